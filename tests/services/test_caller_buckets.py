"""Filters on `$me`/`$myTeams` read as bucket choices over shared MPs, against the oracle, on a
real redis-server and both databases: the first read (recomputed), the warm one (cache), the
warm one after a stream of changes (applied deltas), and the SQL answer with the counter Redis
unreachable (sql) all equal the oracle, for every role, view, support narrowing and profile,
over every placeholder shape (tests/support/random_filters.caller_filters)."""
from __future__ import annotations

import random

import pytest

from tally.core.clock import epoch_ms
from tally.core.conditions import parse_definition
from tally.core.filters import SYSTEM_FILTERS
from tally.services.outbox import apply_pending
from tests.support import oracle
from tests.support.random_filters import caller_definition, caller_filters
from tests.support.randomdata import principals, random_tickets
from tests.support.tickets import NOW, as_events, post_events

pytestmark = pytest.mark.both_databases

SEED = 20261219
URL = "/api/v2/ticketing/ticket/count?type={}&module=ticketing"
FILTERS = "/api/v2/ticketing/filters"
ZONES = ("UTC", "Asia/Calcutta", "America/New_York")
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens: the counter store is unreachable
# Users (one with a bar in the id), agents of no, one, several and a repeated team, an admin, a
# service token with the admin role, and a user who is an agent too.
CALLERS = [principals()[i] for i in (0, 2, 5, 6, 7, 8, 9, 11, 12, 13)]


def _create(client, owner, name, conditions) -> str:
    made = client.post(FILTERS, headers=owner,
                       json={"name": name, "shared": True, "conditions": conditions})
    assert made.status_code == 201, made.get_json()
    return made.get_json()["data"]["id"]


def _ask(client, headers, principal, view_type, ids, profile_id, support, tz):
    extra = {"issupportrequest": "true"} if support else {}
    response = client.post(URL.format(view_type),
                           json={"filterIds": ids, "timezone": tz,
                                 "templateProfileFilterId": profile_id},
                           headers={**headers(user=principal.user_id, roles=principal.roles,
                                              teams=principal.teams), **extra})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    return response.headers["X-Count-Source"], data["counts"], data["summary"]


@pytest.mark.slow  # ~100 count calls per database
def test_caller_conjuncts_count_exactly_warm_recomputed_and_from_sql(
        ticket_world, client, headers, make_app, redis_url, tenant_id):
    # Given 300 random tickets, shared filters of every caller shape, and two caller profiles
    services, tickets = ticket_world(now=NOW, n=300, seed=SEED)
    now = epoch_ms(NOW)
    rng = random.Random(SEED)
    owner = headers(user="u5", roles=("ticket_admin",))
    definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS}
    for name, conditions in caller_filters(SEED).items():
        definitions[_create(client, owner, name, conditions)] = parse_definition(conditions)
    profiles: dict[str | None, object] = {None: None}
    for i in range(2):
        conditions = caller_definition(rng)
        profiles[_create(client, owner, f"profile-{i}", conditions)] = parse_definition(
            conditions, as_profile=True)
    ids = list(definitions)
    asks = []  # each caller and view once; profile × support narrowing cycle through all six
    for i, principal in enumerate(CALLERS):
        views = ["template", "user"] + (["agent"] if principal.has_any(
            "ticket_agent", "ticket_admin") else [])
        for j, view_type in enumerate(views):
            n = i + j
            asks.append((principal, view_type, list(profiles)[n % 3], n % 2 == 1,
                         ZONES[(i + 2 * j) % len(ZONES)]))

    def check(truth, allowed, ask_client=client):
        for principal, view_type, profile_id, support, tz in asks:
            source, counts, summary = _ask(ask_client, headers, principal, view_type, ids,
                                           profile_id, support, tz)
            expected = oracle.count(truth, principal, view_type, definitions,
                                    profiles[profile_id], now, tz, support)
            where = (principal, view_type, profile_id, support, tz)
            assert source in allowed, where
            assert (counts, summary) == expected, where

    # When every caller reads (cold cells recomputed), then reads again (warm)
    check(tickets, {"recomputed", "cache"})
    check(tickets, {"cache"})
    # and a stream of changes moves tickets across assignees, teams, requesters and statuses
    moved = random_tickets(seed=SEED + 1, n=len(tickets), now_ms=now)
    changed = [dict(moved[i], id=t["id"], version=t["version"] + 1, deleted=False)
               for i, t in enumerate(tickets) if not t["deleted"] and i % 2 == 0]
    post_events(client, headers(user="svc", roles=("ticket_service",)), as_events(changed))
    apply_pending(services, tenant_id)
    latest = {t["id"]: t for t in tickets}
    latest.update({t["id"]: t for t in changed})
    # Then the warm counts followed, and SQL alone answers the same with Redis unreachable
    check(list(latest.values()), {"cache"})
    down = make_app(REDIS_URL=DEAD_REDIS, QUEUE_URL=redis_url)
    down.extensions["tally"].clock = lambda: NOW
    check(list(latest.values()), {"sql"}, down.test_client())
