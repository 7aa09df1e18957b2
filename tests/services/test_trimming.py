"""Trimming timed cells, end to end: POST /ticket/count against the oracle on a walked clock.

Tickets span weeks around the start; the clock walks days forward while tickets change, and at
every step the counts are read, the cells trimmed, and read again (now from the trimmed cells):
every answer equals the oracle, for every window kind, on both databases. Trimming meets a
rebuild and the verify here too.
"""
from __future__ import annotations

import pytest

from tally.core.cells import TRIM_MARGIN_MS, Cell
from tally.core.clock import epoch_ms, from_epoch_ms
from tally.core.conditions import TODAY_REACH_MS, parse_definition
from tally.core.filters import SYSTEM_FILTERS
from tally.core.model import OPEN_STATUSES
from tally.services import ticket_maintenance
from tally.services.outbox import apply_pending
from tally.services.rebuild import rebuild_cells
from tally.stores import keys
from tests.support import oracle
from tests.support.randomdata import principals, random_tickets
from tests.support.tickets import NOW, as_events, post_events

pytestmark = pytest.mark.both_databases

H, DAY = 3_600_000, 86_400_000
URL = "/api/v2/ticketing/ticket/count?type={}&module=ticketing"
FILTERS = "/api/v2/ticketing/filters"
ZONES = ("UTC", "Pacific/Chatham", "America/New_York", "Asia/Calcutta")
# An admin (bucket all) and an agent with two teams (team, assignee and overlap buckets).
CALLERS = ((principals()[11], "template"), (principals()[7], "agent"))
OPEN = list(OPEN_STATUSES)
# Custom filters sharing the system filters' MPs, each a window kind the system ones lack:
# "created in the last 2 days" and "older than 5 days" share Created Today's MP; "due in the
# next 12 hours" shares Overdue's and Due Today's.
CUSTOM = {
    "created last 2d": {"all": [{"field": "createdAt", "op": "within_last", "value": "2d"}]},
    "created before 5d": {"all": [{"field": "createdAt", "op": "older_than", "value": "5d"}]},
    "due next 12h": {"all": [{"field": "status", "op": "in", "value": OPEN},
                             {"field": "dueAt", "op": "within_next", "value": "12h"}]},
}
# Added mid-walk: Overdue's MP again, reaching 3 days back, below what was trimmed by then.
WIDE = {"all": [{"field": "status", "op": "in", "value": OPEN},
                {"field": "dueAt", "op": "within_last", "value": "3d"}]}


class World:
    """One tenant with a walkable clock; its tickets as the oracle knows them."""

    def __init__(self, app, client, headers, tenant_id):
        self.services = app.extensions["tally"]
        self.now = epoch_ms(NOW)
        self.services.clock = lambda: from_epoch_ms(self.now)
        self.client, self.headers, self.tenant = client, headers, tenant_id
        self.latest: dict[str, dict] = {}
        self.definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS}
        self.folded = 0

    def post(self, tickets: list[dict]) -> None:
        post_events(self.client, self.headers(user="svc", roles=("ticket_service",)),
                    as_events(tickets))
        self.latest.update({t["id"]: t for t in tickets})

    def ingest(self, tickets: list[dict]) -> None:
        self.post(tickets)
        apply_pending(self.services, self.tenant)

    def custom(self, name: str, conditions: dict) -> str:
        response = self.client.post(FILTERS, json={"name": name, "conditions": conditions,
                                                   "shared": True},
                                    headers=self.headers(user="boss", roles=("ticket_admin",)))
        assert response.status_code == 201, response.get_json()
        filter_id = response.get_json()["data"]["id"]
        self.definitions[filter_id] = parse_definition(conditions)
        return filter_id

    def check(self, tz: str) -> list[str]:
        """Every caller's answer equals the oracle's; the sources of the answers."""
        found = []
        for principal, view_type in CALLERS:
            response = self.client.post(
                URL.format(view_type), json={"filterIds": list(self.definitions),
                                             "timezone": tz},
                headers=self.headers(user=principal.user_id, roles=principal.roles,
                                     teams=principal.teams))
            assert response.status_code == 200, response.get_json()
            data = response.get_json()["data"]
            expected = oracle.count(list(self.latest.values()), principal, view_type,
                                    self.definitions, None, self.now, tz, False)
            assert (data["counts"], data["summary"]) == expected, (
                view_type, tz, from_epoch_ms(self.now))
            found.append(response.headers["X-Count-Source"])
        return found

    def trim(self) -> ticket_maintenance.TrimReport:
        report = ticket_maintenance.trim(self.services, self.tenant, self.now)
        self.folded += report.folded
        return report

    def drift(self) -> list:
        return [d for member in ticket_maintenance.members(self.services, self.tenant)
                for d in ticket_maintenance.compare(self.services, self.tenant, member)]


@pytest.fixture
def world(app, client, headers, tenant_id) -> World:
    made = World(app, client, headers, tenant_id)
    for name, conditions in CUSTOM.items():
        made.custom(name, conditions)
    made.ingest(random_tickets(seed=19, n=250, now_ms=made.now, spread_ms=10 * DAY))
    return made


def changes(world: World, step: int) -> list[dict]:
    """Tickets changed at a step, chosen for what trimming must survive: a long overdue ticket
    closed (its folded member leaves the floor), one whose due date moves forward back into
    reach, one deleted, and a new one long overdue (added straight to the floor)."""
    live = sorted((t for t in world.latest.values() if not t["deleted"]), key=lambda t: t["id"])
    old = [t for t in live if t["dueAt"] is not None and t["dueAt"] < world.now - DAY
           and t["status"] in OPEN_STATUSES]
    bump = lambda t, **fields: dict(t, version=t["version"] + 1, **fields)  # noqa: E731
    changed = []
    if len(old) >= 3:
        changed.append(bump(old[0], status="closed"))
        changed.append(bump(old[1], dueAt=world.now + 6 * H, slaDueAt=world.now + 2 * H))
        changed.append(bump(old[2], deleted=True))
    changed.append(dict(live[step % len(live)], id=f"N{step}", version=1, status="open",
                        createdAt=world.now - 9 * DAY, dueAt=world.now - 4 * DAY))
    return changed


def test_counts_equal_the_oracle_before_and_after_trimming_on_a_walked_clock(world, raw):
    wide = None
    for step in range(12):
        world.now += 9 * H
        tz = ZONES[step % len(ZONES)]
        if step % 2:
            world.ingest(changes(world, step))
        if step == 6:  # a window reaching below what was trimmed: cold, then warm again
            wide = world.custom("due last 3d", WIDE)
            assert world.check(tz) == ["recomputed", "recomputed"]
        world.check(tz)
        report = world.trim()
        assert report.cells > 0 and report.busy == 0
        assert world.check(tz) == ["cache", "cache"]
    assert world.folded > 0
    (overdue_mp,) = raw.smembers(keys.filter_mps_key(world.tenant, "7440"))
    assert overdue_mp in raw.smembers(keys.filter_mps_key(world.tenant, wide))
    assert int(raw.hget(keys.mp_reach_key(world.tenant), overdue_mp)) == 3 * DAY
    assert world.drift() == []


def test_verify_compares_a_trimmed_cells_floor(world, raw):
    world.check("UTC")
    world.now += 2 * DAY
    assert world.trim().folded > 0
    assert world.drift() == []
    (mp,) = raw.smembers(keys.filter_mps_key(world.tenant, "7440"))
    raw.hincrby(keys.mp_counts_key(world.tenant, mp), "f:all", 1)
    (difference,) = world.drift()
    assert "floor below" in difference.field and difference.redis == difference.sql + 1


def test_a_trim_meeting_a_rebuild_leaves_the_counts_exact(world, monkeypatch):
    world.check("UTC")
    world.now += 2 * DAY
    cells = [c for c in world.services.ticket_counters.warm_cells(world.tenant)
             if c.mp.score_field]
    install_many = world.services.counters.install_many
    during: list = []

    def trim_then_install(*args, **kwargs):  # between the snapshot and the install
        during.append(world.trim())
        world.post(changes(world, 1))  # after the snapshot: applied after the install
        return install_many(*args, **kwargs)

    monkeypatch.setattr(world.services.counters, "install_many", trim_then_install)
    rebuild_cells(world.services, world.tenant, cells, world.now)
    monkeypatch.undo()
    assert during[0].busy == len(cells) and during[0].folded == 0
    apply_pending(world.services, world.tenant)
    assert world.check("UTC") == ["cache", "cache"]
    assert world.trim().folded == 0  # the install was trimmed already
    assert world.drift() == []


def test_an_install_is_trimmed_to_the_recorded_reach(world, raw):
    world.check("UTC")
    (mp,) = raw.smembers(keys.filter_mps_key(world.tenant, "7440"))
    value = world.services.ticket_counters.cell_value(
        world.tenant, Cell(world.services.ticket_counters.mp(world.tenant, mp), "all"))
    # Overdue's MP is Due Today's too: it reaches back as far as "today" can
    assert value.cutoff == world.now - TODAY_REACH_MS - TRIM_MARGIN_MS and value.floor > 0
    assert min(value.members.values()) >= value.cutoff
