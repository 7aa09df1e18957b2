"""The oracle: hand-checked counts, and agreement with the window arithmetic it re-derives."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.support import oracle
from tally.core.conditions import parse_definition
from tally.core.model import Principal
from tally.core.filters import (
    DEMO_FILTERS, INTERNAL_FILTERS, SUMMARY_FILTER_IDS, SYSTEM_FILTERS)
from tally.errors import DefinitionError, VisibilityDenied
from tests.support.randomdata import HOUR, principals, random_tickets

NOW = int(datetime(2026, 3, 8, 16, 30, tzinfo=timezone.utc).timestamp() * 1000)
ALL_FILTERS = {s.id: s.definition for s in SYSTEM_FILTERS + INTERNAL_FILTERS + DEMO_FILTERS}
BOB = Principal("bob", "tenant", "realm", frozenset({"ticket_agent"}), ("t1",))


def ticket(id_, status="open", team=None, assignee=None, requester="ann", support=False,
           tags=(), created=NOW - HOUR, due=None, sla=None, deleted=False, priority="low"):
    return {"id": id_, "version": 1, "deleted": deleted, "status": status, "priority": priority,
            "teamId": team, "assigneeId": assignee, "requesterId": requester,
            "category": None, "tags": list(tags), "isSupportRequest": support,
            "createdAt": created, "dueAt": due, "slaDueAt": sla}


TICKETS = [
    ticket("1", team="t1", due=NOW - 1, sla=NOW - 1),                 # overdue, breached
    ticket("2", assignee="bob", due=NOW + HOUR, sla=NOW + HOUR - 1),  # due today, at risk
    ticket("3", status="closed", team="t1", assignee="bob", due=NOW - HOUR, support=True),
    ticket("4", team="t2", requester="bob", tags=["vip"], support=True, created=NOW - 30 * HOUR),
    ticket("5", team="t1", deleted=True),
    ticket("6", status="pending", team="t1", assignee="cy", created=NOW - 25 * HOUR,
           support=True, priority="critical"),
]


def test_agent_counts_by_hand():
    counts, summary = oracle.count(TICKETS, BOB, "agent", ALL_FILTERS, None, NOW, "UTC", False)
    # Visible: 1, 2, 3, 6 (team t1 or assigned to bob); 4 is t2 and not bob's; 5 is deleted.
    assert counts["all"] == 4 and counts["7471"] == 1 and counts["7473"] == 1
    assert counts["7472"] == 2 and counts["7440"] == 1 and counts["7474"] == 1
    assert counts["7475"] == 1 and counts["5932"] == 3
    assert counts["6358"] == 2  # 1 is overdue and also due earlier today
    assert counts["004ce44d-b69d-4acb-becd-78c3359e0002"] == 0  # 6 is assigned; 1 is recent
    assert summary == {"totalOpen": 3, "totalClosed": 1, "slaBreached": 1, "dueToday": 2,
                       "overdue": 1}


def test_user_support_and_profile_narrowing_by_hand():
    counts, _ = oracle.count(TICKETS, BOB, "user", ALL_FILTERS, None, NOW, "UTC", False)
    assert counts["all"] == 1 and counts["a7069dca-b9b1-4bf5-9a41-20dd75bf6f62"] == 1
    admin = Principal("root", "tenant", "realm", frozenset({"ticket_admin"}))
    counts, summary = oracle.count(TICKETS, admin, "template", ALL_FILTERS, None, NOW, "UTC",
                                   True)
    assert counts["all"] == 3 and summary["totalClosed"] == 1
    unassigned = parse_definition({"all": [{"field": "assigneeId", "op": "is_null"}]},
                                  as_profile=True)
    counts, summary = oracle.count(TICKETS, admin, "template", ALL_FILTERS, unassigned, NOW,
                                   "UTC", False)
    assert counts["all"] == 2 and counts["7440"] == 1 and counts["7471"] == 0
    assert counts["004ce44d-b69d-4acb-becd-78c3359e0002"] == 1
    assert summary == {"totalOpen": 2, "totalClosed": 0, "slaBreached": 1, "dueToday": 1,
                       "overdue": 1}


def test_a_profile_with_a_time_condition_is_refused():
    timed = parse_definition({"all": [{"field": "dueAt", "op": "today"}]})
    with pytest.raises(DefinitionError):
        oracle.count(TICKETS, BOB, "agent", ALL_FILTERS, timed, NOW, "UTC", False)


def test_agent_view_without_an_agent_role_is_denied():
    user = Principal("bob", "tenant", "realm", frozenset({"ticket_user"}))
    with pytest.raises(VisibilityDenied):
        oracle.count(TICKETS, user, "agent", ALL_FILTERS, None, NOW, "UTC", False)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Chatham",
                                  "Asia/Calcutta"])
def test_summary_equals_its_system_filters_on_random_tickets(zone):
    tickets = random_tickets(seed=7, n=2000, now_ms=NOW)
    profiles = (None, parse_definition({"any": [
        {"field": "priority", "op": "in", "value": ["critical", "high"]},
        {"field": "tags", "op": "contains", "value": "vip"}]}))
    for principal in principals()[::3]:
        for profile in profiles:
            counts, summary = oracle.count(tickets, principal, "template", ALL_FILTERS, profile,
                                           NOW, zone, False)
            assert summary == {key: counts[fid] for key, fid in SUMMARY_FILTER_IDS.items()}
            assert summary["totalOpen"] + summary["totalClosed"] == counts["all"]
            statuses = ("3745", "3747", "3749", "3746", "3748", "3750")
            assert counts["all"] == sum(counts[f] for f in statuses)


# Timestamps every 7 minutes plus a few ms around each of these nows, so that each local midnight
# and each now ± duration boundary is crossed, in zones with 23-, 25- and 45-minute-offset days.
WALKS = [("America/New_York", "2026-03-08T04:59:59.999"),
         ("America/New_York", "2026-11-02T04:59:59.999"),
         ("Pacific/Chatham", "2026-04-05T11:14:59.999"),
         ("Pacific/Chatham", "2026-09-26T11:15:00.000"),
         ("Asia/Calcutta", "2026-03-09T18:29:59.999"),
         ("Asia/Calcutta", "2026-03-09T18:30:00")]
TIMED = [{"all": [{"field": f, "op": op, **({"value": v} if v else {})}]}
         for f, op, v in (("createdAt", "today", None), ("dueAt", "today", None),
                          ("slaDueAt", "before_now", None), ("dueAt", "within_next", "1h"),
                          ("createdAt", "within_last", "90m"), ("slaDueAt", "older_than", "1d"))]


@pytest.mark.parametrize("zone, instant", WALKS)
def test_window_bounds_agree_with_local_dates_across_boundaries(zone, instant):
    now = int(datetime.fromisoformat(instant).replace(tzinfo=timezone.utc).timestamp() * 1000)
    stamps = [now + k * 7 * 60_000 + jitter for k in range(-420, 420) for jitter in (-1, 0, 1)]
    stamps += [now - 1, now, now + 1, None]
    tickets = [{"createdAt": s, "dueAt": s, "slaDueAt": s} for s in stamps]
    admin = Principal("root", "tenant", "realm", frozenset({"ticket_admin"}))
    for obj in TIMED:
        definition = parse_definition(obj)
        via_windows = sum(definition.matches(t, admin, now, zone) for t in tickets)
        counts, _ = oracle.count(tickets, admin, "template", {"f": definition}, None, now, zone,
                                 False)
        assert counts["f"] == via_windows
        assert 0 < via_windows < len(tickets)  # the walk straddles the window's edges
