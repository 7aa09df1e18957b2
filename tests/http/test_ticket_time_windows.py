"""Time filters through POST /ticket/count with the clock walked across their boundaries.

Every observation is made warm (a second call answered from the counters) and cold (after
FLUSHALL, rebuilt from SQL), and checked against the oracle as well as against the exact number
the boundary demands.
"""
from __future__ import annotations

from datetime import datetime

import pytest
import redis

from tally.core.clock import epoch_ms, from_epoch_ms
from tests.support import oracle
from tally.core.conditions import parse_definition
from tally.core.model import Principal
from tally.core.filters import SYSTEM_FILTERS
from tally.services.outbox import apply_pending
from tests.support.tokens import REALM
from tests.support.tickets import as_events, post_events

pytestmark = pytest.mark.both_databases

URL = "/api/v2/ticketing/ticket/count?type=template&module=ticketing"
FILTERS = "/api/v2/ticketing/filters"
SYSTEM_IDS = [spec.id for spec in SYSTEM_FILTERS]
CREATED_TODAY, DUE_TODAY, OVERDUE, BREACHED, AT_RISK = "5932", "6358", "7440", "7474", "7475"
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def ms(text: str) -> int:
    return epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


# Local midnights written out in UTC by hand (not derived with zoneinfo, as the code under test
# is): the day's start and the next day's start.
MIDNIGHTS = [
    ("Asia/Calcutta", ms("2026-01-14T18:30:00.000Z"), ms("2026-01-15T18:30:00.000Z")),  # +5:30
    ("America/New_York", ms("2026-03-08T05:00:00.000Z"), ms("2026-03-09T04:00:00.000Z")),  # 23 h
    ("America/New_York", ms("2026-11-01T04:00:00.000Z"), ms("2026-11-02T05:00:00.000Z")),  # 25 h
    # Chatham: 2026-04-05 from +13:45 to +12:45 (25 h); 2026-09-27 from +12:45 to +13:45 (23 h)
    ("Pacific/Chatham", ms("2026-04-04T10:15:00.000Z"), ms("2026-04-05T11:15:00.000Z")),
    ("Pacific/Chatham", ms("2026-09-26T11:15:00.000Z"), ms("2026-09-27T10:15:00.000Z")),
]


def ticket(id_: str, created: int, status: str = "open", due: int | None = None,
           sla: int | None = None, category: str | None = None) -> dict:
    return {"id": id_, "version": 1, "deleted": False, "status": status, "priority": "medium",
            "teamId": "t0", "assigneeId": None, "requesterId": "r0", "category": category,
            "tags": [], "isSupportRequest": False, "createdAt": created, "dueAt": due,
            "slaDueAt": sla}


class Api:
    """One tenant with a walkable clock, seen by an admin through POST /ticket/count."""

    def __init__(self, app, client, headers, tenant_id, redis_url):
        self.services = app.extensions["tally"]
        self.now = ms("2026-01-01T00:00:00.000Z")
        self.services.clock = lambda: from_epoch_ms(self.now)
        self.client, self.tenant = client, tenant_id
        self.redis_url = redis_url
        self.admin = headers(user="boss", roles=("ticket_admin",))
        self.principal = Principal("boss", tenant_id, REALM, frozenset({"ticket_admin"}))
        self.service = headers(user="svc", roles=("ticket_service",))
        self.tickets: list[dict] = []
        self.definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS}

    def ingest(self, tickets: list[dict]) -> None:
        post_events(self.client, self.service, as_events(tickets))
        apply_pending(self.services, self.tenant)
        self.tickets += tickets

    def custom(self, name: str, conditions: dict) -> str:
        response = self.client.post(FILTERS, json={"name": name, "conditions": conditions},
                                    headers=self.admin)
        assert response.status_code == 201, response.get_json()
        filter_id = response.get_json()["data"]["id"]
        self.definitions[filter_id] = parse_definition(conditions)
        return filter_id

    def _ask(self, tz: str):
        response = self.client.post(URL, json={"filterIds": list(self.definitions),
                                               "timezone": tz}, headers=self.admin)
        assert response.status_code == 200, response.get_json()
        return response

    def at(self, now: int, tz: str = "UTC") -> tuple[dict, dict]:
        """Counts and summary at `now`: warm and cold agree, and both equal the oracle."""
        self.now = now
        first, warm = self._ask(tz), self._ask(tz)
        assert warm.headers["X-Count-Source"] == "cache"
        redis.Redis.from_url(self.redis_url).flushall()
        cold = self._ask(tz)
        assert cold.headers["X-Count-Source"] == "recomputed"
        answers = [(r.get_json()["data"]["counts"], r.get_json()["data"]["summary"])
                   for r in (first, warm, cold)]
        assert answers[0] == answers[1] == answers[2], (tz, from_epoch_ms(now))
        expected = oracle.count(self.tickets, self.principal, "template", self.definitions,
                                None, now, tz, False)
        assert answers[2] == expected, (tz, from_epoch_ms(now))
        assert cold.get_json()["data"]["timezone"] == tz
        return answers[2]


@pytest.fixture
def api(app, client, headers, tenant_id, redis_url) -> Api:
    return Api(app, client, headers, tenant_id, redis_url)


def test_created_today_and_due_today_turn_exactly_at_local_midnight(api):
    for n, (_, start, end) in enumerate(MIDNIGHTS):
        api.ingest([
            ticket(f"m{n}-a", start - 1, due=start - 1),  # local 23:59:59.999 the day before
            ticket(f"m{n}-b", start, due=start),  # local 00:00:00.000
            ticket(f"m{n}-c", end - 1, due=end - 1),  # the day's last millisecond
            ticket(f"m{n}-d", end, due=end),  # the next day's first
            ticket(f"m{n}-e", start, status="resolved", due=start),  # created today, not open
        ])
    for tz, start, end in MIDNIGHTS:
        seen = []
        for now in (start - 1, start, end - 1, end):
            counts, summary = api.at(now, tz)
            assert summary["dueToday"] == counts[DUE_TODAY]
            seen.append((counts[CREATED_TODAY], counts[DUE_TODAY]))
        assert seen == [(1, 1), (3, 2), (3, 2), (1, 1)], (tz, from_epoch_ms(start))


def test_overdue_breached_and_at_risk_flip_at_the_deadline_to_the_millisecond(api):
    due, sla = ms("2026-06-10T12:00:00.500Z"), ms("2026-06-20T08:30:00.250Z")
    api.ingest([
        ticket("due", due - 10 * DAY, due=due),
        ticket("sla", due - 10 * DAY, sla=sla),
        ticket("done", due - 10 * DAY, status="closed", due=due, sla=sla),
        ticket("later", due - 10 * DAY, due=due + 30 * DAY, sla=sla + 30 * DAY),
    ])
    overdue = []
    for now in (due - 1, due, due + 1):
        counts, summary = api.at(now)
        assert summary["overdue"] == counts[OVERDUE]
        overdue.append(counts[OVERDUE])
    assert overdue == [0, 0, 1]  # dueAt < now: not yet at now == dueAt
    walk = []
    for now in (sla - HOUR - 1, sla - HOUR, sla - HOUR + 1, sla - 1, sla, sla + 1):
        counts, summary = api.at(now, "Pacific/Chatham")
        assert summary["slaBreached"] == counts[BREACHED]
        assert counts[OVERDUE] == 1
        walk.append((counts[AT_RISK], counts[BREACHED]))
    # at risk: now <= slaDueAt < now + 1h; breached: slaDueAt < now
    assert walk == [(0, 0), (0, 0), (1, 0), (1, 0), (1, 0), (0, 1)]


def test_custom_within_last_and_older_than_windows_are_half_open(api):
    created = ms("2026-02-02T10:00:00.000Z")
    recent = api.custom("Probe in the last 90m", {"all": [
        {"field": "category", "op": "eq", "value": "probe"},
        {"field": "createdAt", "op": "within_last", "value": "90m"}]})
    old = api.custom("Probe older than a day", {"all": [
        {"field": "category", "op": "eq", "value": "probe"},
        {"field": "createdAt", "op": "older_than", "value": "24h"}]})
    api.ingest([ticket("probe", created, category="probe"),
                ticket("noise", created, category="other"),
                ticket("unborn", created + 2 * DAY, category="probe")])
    walk = []
    for now in (created - 1, created, created + 1, created + 90 * MINUTE,
                created + 90 * MINUTE + 1, created + DAY, created + DAY + 1):
        counts, _ = api.at(now, "America/New_York")
        walk.append((counts[recent], counts[old]))
    # within_last 90m: [now-90m, now); older_than 24h: (-inf, now-24h)
    assert walk == [(0, 0), (0, 0), (1, 0), (1, 0), (0, 0), (0, 0), (0, 1)]
