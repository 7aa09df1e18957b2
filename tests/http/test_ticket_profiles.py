"""Custom filters and a template profile through POST /ticket/count, against the oracle.

Three shared custom filters (one with `$me`, one with `$myTeams`, one with a time condition) and
a template profile are created over POST /filters; an agent, an admin and a user count them
within the profile, warm and cold; then streams of ticket changes keep the warm counts exact.
"""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
import redis

from tally.core.clock import epoch_ms, from_epoch_ms
from tests.support import oracle
from tally.core.conditions import parse_definition
from tally.core.model import Principal
from tally.core.filters import SYSTEM_FILTERS
from tests.support.tokens import REALM
from tests.support.randomdata import HOUR, random_tickets
from tests.support.tickets import ingest

pytestmark = pytest.mark.both_databases

URL = "/api/v2/ticketing/ticket/count?type={}&module=ticketing"
FILTERS = "/api/v2/ticketing/filters"
NOW = datetime(2026, 3, 8, 6, 45, 30, 125000, tzinfo=timezone.utc)
TZ = "Asia/Calcutta"
CUSTOM = {
    "mine": {"all": [{"field": "assigneeId", "op": "eq", "value": "$me"},
                     {"field": "status", "op": "in", "value": ["open", "in_progress", "pending"]}]},
    "teams": {"any": [{"field": "teamId", "op": "in", "value": "$myTeams"},
                      {"all": [{"field": "tags", "op": "contains", "value": "vip"},
                               {"field": "teamId", "op": "is_null"}]}]},
    "soon": {"all": [{"field": "priority", "op": "ne", "value": "low"},
                     {"field": "slaDueAt", "op": "within_next", "value": "36h"}]},
}
PROFILE = {"all": [{"field": "priority", "op": "in", "value": ["critical", "high"]}]}
CALLERS = [  # (principal, the views it may ask for)
    (Principal("u1", "", REALM, frozenset({"ticket_agent"}), ("t0", "t|3")), ("template", "agent")),
    (Principal("u5", "", REALM, frozenset({"ticket_admin"}), ("t0",)), ("template", "agent")),
    (Principal("auth0|u2", "", REALM, frozenset({"ticket_user"}), ("t1",)), ("template", "user")),
]


class World:
    def __init__(self, app, client, headers, tenant_id, redis_url):
        self.services = app.extensions["tally"]
        self.now = epoch_ms(NOW)
        self.services.clock = lambda: from_epoch_ms(self.now)
        self.client, self.headers, self.tenant, self.redis_url = client, headers, tenant_id, \
            redis_url
        self.latest: dict[str, dict] = {}
        self.definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS}
        owner = headers(user="u5", roles=("ticket_admin",))
        self.custom = {name: self._create(owner, name, c) for name, c in CUSTOM.items()}
        self.profile_id = self._create(owner, "High and above", PROFILE)
        self.profile = parse_definition(PROFILE)

    def _create(self, hdrs, name, conditions) -> str:
        response = self.client.post(FILTERS, json={"name": name, "conditions": conditions,
                                                   "shared": True}, headers=hdrs)
        assert response.status_code == 201, response.get_json()
        filter_id = response.get_json()["data"]["id"]
        if name in CUSTOM:
            self.definitions[filter_id] = parse_definition(conditions)
        return filter_id

    def ingest(self, tickets: list[dict]) -> None:
        ingest(self.services, self.client, self.headers, self.tenant, tickets)
        self.latest.update({t["id"]: t for t in tickets})

    def ask(self, principal: Principal, view: str):
        response = self.client.post(URL.format(view), json={
            "filterIds": list(self.definitions), "timezone": TZ,
            "templateProfileFilterId": self.profile_id},
            headers=self.headers(user=principal.user_id, roles=principal.roles,
                                 teams=principal.teams))
        assert response.status_code == 200, response.get_json()
        return response

    def expected(self, principal: Principal, view: str) -> tuple[dict, dict]:
        return oracle.count(list(self.latest.values()), principal, view, self.definitions,
                            self.profile, self.now, TZ, False)

    def flush(self) -> None:
        redis.Redis.from_url(self.redis_url).flushall()


def answer(response) -> tuple[dict, dict]:
    data = response.get_json()["data"]
    return data["counts"], data["summary"]


@pytest.fixture
def world(app, client, headers, tenant_id, redis_url) -> World:
    made = World(app, client, headers, tenant_id, redis_url)
    made.ingest(random_tickets(seed=41, n=100, now_ms=made.now))
    return made


def test_counts_and_summary_within_the_profile_equal_the_oracle_warm_and_cold(world):
    for principal, views in CALLERS:
        for view in views:
            first, warm = world.ask(principal, view), world.ask(principal, view)
            world.flush()
            cold = world.ask(principal, view)
            assert warm.headers["X-Count-Source"] == "cache"
            assert cold.headers["X-Count-Source"] == "recomputed"
            counts, summary = world.expected(principal, view)
            for response in (first, warm, cold):
                assert answer(response) == (counts, summary), (principal.user_id, view)
            assert summary["totalOpen"] + summary["totalClosed"] == counts["all"]
            # the profile narrows: only critical and high tickets are counted
            assert counts["all"] == counts["4195"] + counts["4196"]
            assert counts["4197"] == counts["4362"] == 0
    # the data must make the three callers' views and the custom filters differ
    seen = {(p.user_id, v): answer(world.ask(p, v))[0] for p, vs in CALLERS for v in vs}
    assert len({c["all"] for c in seen.values()}) >= 3
    for name in CUSTOM:
        assert any(c[world.custom[name]] > 0 for c in seen.values()), name


def changes(rng: random.Random, latest: dict[str, dict], round_: int, now: int) -> list[dict]:
    """Field changes for about a third of the live tickets, a few deletions, a few new ones."""
    live = [t for t in latest.values() if not t["deleted"]]
    fresh = random_tickets(seed=1000 + round_, n=len(live) + 12, now_ms=now)
    out = []
    for ticket, new in zip(live, fresh):
        roll = rng.random()
        if roll < 0.05:
            out.append(dict(ticket, version=ticket["version"] + 1, deleted=True))
        elif roll < 0.4:
            out.append(dict(new, id=ticket["id"], version=ticket["version"] + rng.randint(1, 3),
                            createdAt=ticket["createdAt"], deleted=False))
    for i, new in enumerate(fresh[len(live):]):
        out.append(dict(new, id=f"R{round_}-{i}", deleted=False))
    return out


def test_a_stream_of_updates_keeps_the_warm_profile_counts_exact(world):
    for principal, views in CALLERS:  # warm every cell these callers read
        for view in views:
            world.ask(principal, view)
    rng = random.Random(5)
    for round_ in range(2):
        batch = changes(rng, world.latest, round_, world.now)
        assert len(batch) > 20
        world.ingest(batch)
        world.now += 5 * HOUR  # the time filter's window moves on as well
        for principal, views in CALLERS:
            for view in views:
                response = world.ask(principal, view)
                assert response.headers["X-Count-Source"] == "cache", (round_, principal)
                assert answer(response) == world.expected(principal, view), (
                    round_, principal.user_id, view)


def test_a_version_only_reupsert_then_a_close_leaves_no_stale_warm_count(world):
    """A ticket re-sent with a new version and no field change (an edit of a field tally does
    not keep), then closed: the warm time-based counts must drop it as the cold ones do."""
    admin = CALLERS[1][0]
    late = world.now - 2 * HOUR
    base = {"id": "V1", "version": 1, "deleted": False, "status": "open", "priority": "critical",
            "teamId": "t0", "assigneeId": "u1", "requesterId": "auth0|u2", "category": None,
            "tags": [], "isSupportRequest": False, "createdAt": late, "dueAt": late,
            "slaDueAt": late}
    world.ingest([base])
    before = answer(world.ask(admin, "template"))
    world.ingest([dict(base, version=2)])
    world.ingest([dict(base, version=3, status="closed")])
    warm = world.ask(admin, "template")
    assert warm.headers["X-Count-Source"] == "cache"
    expected = world.expected(admin, "template")
    assert expected[1]["slaBreached"] == before[1]["slaBreached"] - 1
    assert answer(warm) == expected
