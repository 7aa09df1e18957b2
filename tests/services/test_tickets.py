"""POST /ticket/count against the plain-Python oracle: warm, cold, every role, several zones."""
from __future__ import annotations

import pytest
import redis

from tally.core.clock import epoch_ms
from tests.support import oracle
from tally.core.filters import SYSTEM_FILTERS
from tally.services.outbox import apply_pending
from tests.support.randomdata import principals
from tests.support.tickets import NOW, as_events, post_events

pytestmark = pytest.mark.both_databases

SYSTEM_IDS = [spec.id for spec in SYSTEM_FILTERS]
ZONES = ("UTC", "Asia/Calcutta", "America/New_York", "Pacific/Chatham")
URL = "/api/v2/ticketing/ticket/count?type={}&module=ticketing"


@pytest.fixture
def world(ticket_world):
    """300 random tickets ingested over HTTP and applied, with the clock frozen at NOW."""
    return ticket_world(now=NOW, n=300, seed=7)


def ask(client, headers, principal, view_type, ids, tz="UTC", support=None, profile=None):
    extra = {} if support is None else {"issupportrequest": support}
    body = {"filterIds": ids, "timezone": tz, "templateProfileFilterId": profile}
    response = client.post(URL.format(view_type), json=body,
                           headers={**headers(user=principal.user_id, roles=principal.roles,
                                              teams=principal.teams), **extra})
    return response


def expected(tickets, principal, view_type, ids, tz, support=False):
    definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS if spec.id in ids}
    return oracle.count(tickets, principal, view_type, definitions, None, epoch_ms(NOW), tz,
                        support)


@pytest.mark.parametrize("tz", ZONES)
def test_counts_and_summary_match_the_oracle_for_every_caller(world, client, headers, tz):
    _, tickets = world
    for principal in principals():
        for view_type in ("template", "agent", "user"):
            response = ask(client, headers, principal, view_type, SYSTEM_IDS, tz)
            agent_roles = ("ticket_agent", "ticket_admin")
            if view_type == "agent" and not principal.has_any(*agent_roles):
                assert response.status_code == 403
                continue
            assert response.status_code == 200, response.get_json()
            data = response.get_json()["data"]
            counts, summary = expected(tickets, principal, view_type, SYSTEM_IDS, tz)
            assert data["counts"] == counts, (principal, view_type)
            assert data["summary"] == summary, (principal, view_type)
            assert summary["totalOpen"] + summary["totalClosed"] == counts["all"]


def test_first_read_recomputes_then_cache_then_cold_again_after_flush(world, client, headers,
                                                                      redis_url):
    _, tickets = world
    agent = principals()[8]
    first = ask(client, headers, agent, "agent", SYSTEM_IDS, "Asia/Calcutta")
    second = ask(client, headers, agent, "agent", SYSTEM_IDS, "Asia/Calcutta")
    redis.Redis.from_url(redis_url).flushall()
    third = ask(client, headers, agent, "agent", SYSTEM_IDS, "Asia/Calcutta")
    assert [r.headers["X-Count-Source"] for r in (first, second, third)] == [
        "recomputed", "cache", "recomputed"]
    counts, _ = expected(tickets, agent, "agent", SYSTEM_IDS, "Asia/Calcutta")
    assert first.get_json()["data"]["counts"] == counts
    assert second.get_json()["data"]["counts"] == counts
    assert third.get_json()["data"]["counts"] == counts


def test_support_header_narrows_to_support_requests(world, client, headers):
    _, tickets = world
    admin = principals()[11]
    response = ask(client, headers, admin, "template", SYSTEM_IDS, support="true")
    counts, summary = expected(tickets, admin, "template", SYSTEM_IDS, "UTC", support=True)
    assert response.get_json()["data"]["counts"] == counts
    assert response.get_json()["data"]["summary"] == summary


def test_warm_counters_follow_later_changes(world, client, headers, tenant_id):
    services, tickets = world
    admin = principals()[11]
    ask(client, headers, admin, "template", SYSTEM_IDS)  # warm everything this caller reads
    changed = [dict(t, status="closed", version=t["version"] + 1) for t in tickets[:40]
               if not t["deleted"]]
    post_events(client, headers(user="svc", roles=("ticket_service",)), as_events(changed))
    apply_pending(services, tenant_id)
    latest = {t["id"]: t for t in tickets}
    latest.update({t["id"]: t for t in changed})
    response = ask(client, headers, admin, "template", SYSTEM_IDS)
    assert response.headers["X-Count-Source"] == "cache"
    counts, summary = expected(list(latest.values()), admin, "template", SYSTEM_IDS, "UTC")
    assert response.get_json()["data"]["counts"] == counts
    assert response.get_json()["data"]["summary"] == summary
