"""The system filter catalogue: ids, names and colors of the API document, and their meaning."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tally.core.conditions import parse_definition
from tally.core.model import CLOSED_STATUSES, OPEN_STATUSES, STATUSES, Principal
from tally.core.filters import (
    DEMO_FILTERS, INTERNAL_FILTERS, SUMMARY_FILTER_IDS, SUMMARY_FILTERS, SYSTEM_BY_ID,
    SYSTEM_FILTERS, SYSTEM_TYPES, is_system_id)

ME = Principal("bob", "tenant", "realm", frozenset({"ticket_agent"}), ("t1", "t2"))
H = 3_600_000
NOW = int(datetime(2026, 3, 8, 16, 30, tzinfo=timezone.utc).timestamp() * 1000)

# From the ticket-count API document's filterDetails, verbatim.
DOCUMENTED = {
    "all": ("All Tickets", "system", None),
    "3745": ("Open", "status", "#3B82F6"), "3747": ("In Progress", "status", "#F59E0B"),
    "3749": ("Pending", "status", "#8B5CF6"), "3746": ("Resolved", "status", "#10B981"),
    "3748": ("Closed", "status", "#6B7280"), "3750": ("Cancelled", "status", "#EF4444"),
    "4195": ("Critical", "priority", "#DC2626"), "4196": ("High", "priority", "#F97316"),
    "4197": ("Medium", "priority", "#EAB308"),
    "7471": ("Assigned to Me", "assignment", None), "7472": ("My Team", "team", None),
}
OURS = {"4362": ("Low", "priority"), "7473": ("Unassigned", "assignment"),
        "5932": ("Created Today", "time"), "6358": ("Due Today", "time"),
        "7440": ("Overdue", "time"), "7474": ("SLA Breached", "sla"),
        "7475": ("SLA At Risk", "sla")}


def test_documented_filters_keep_their_ids_names_types_and_colors():
    for fid, (name, type_, color) in DOCUMENTED.items():
        spec = SYSTEM_BY_ID[fid]
        assert (spec.name, spec.type, spec.color) == (name, type_, color)
        expected = {"id": fid, "name": name, "type": type_}
        assert spec.details() == (expected | {"color": color} if color else expected)


def test_catalogue_is_exactly_the_contracts_list():
    assert {s.id: (s.name, s.type) for s in SYSTEM_FILTERS if s.id in OURS} == OURS
    assert set(SYSTEM_BY_ID) == set(DOCUMENTED) | set(OURS)
    assert len(SYSTEM_BY_ID) == len(SYSTEM_FILTERS)  # no id twice
    assert all(s.id == "all" or s.id.isdigit() for s in SYSTEM_FILTERS)
    assert all(s.type in SYSTEM_TYPES for s in SYSTEM_FILTERS)


@pytest.mark.parametrize("spec", SYSTEM_FILTERS + INTERNAL_FILTERS + DEMO_FILTERS,
                         ids=lambda s: s.id)
def test_every_definition_is_written_in_the_condition_language(spec):
    assert parse_definition(spec.conditions) == spec.definition


def test_status_and_priority_filters_select_one_value_each():
    for status in STATUSES:
        hits = [s.id for s in SYSTEM_FILTERS if s.type == "status"
                and s.definition.static_matches({"status": status}, ME)]
        assert len(hits) == 1
    for priority in ("critical", "high", "medium", "low"):
        hits = [s.id for s in SYSTEM_FILTERS if s.type == "priority"
                and s.definition.static_matches({"priority": priority}, ME)]
        assert len(hits) == 1


def matches(fid: str, now: int = NOW, tz: str = "UTC", **ticket) -> bool:
    spec = SYSTEM_BY_ID.get(fid) or next(s for s in DEMO_FILTERS + INTERNAL_FILTERS
                                         if s.id == fid)
    return spec.definition.matches({"status": "open", **ticket}, ME, now, tz)


def test_work_queues_count_open_tickets_only():
    assert matches("7471", assigneeId="bob")
    assert not matches("7471", assigneeId="ann") and not matches("7471", assigneeId=None)
    assert matches("7473", assigneeId=None) and not matches("7473", assigneeId="bob")
    assert matches("7472", teamId="t2") and not matches("7472", teamId="t3")
    assert not matches("7472", teamId=None)
    for fid, ticket in (("7471", {"assigneeId": "bob"}), ("7473", {"assigneeId": None}),
                        ("7472", {"teamId": "t1"})):
        for status in STATUSES:
            assert matches(fid, **ticket, status=status) == (status in OPEN_STATUSES)


def test_created_today_counts_closed_tickets_but_due_today_does_not():
    assert matches("5932", createdAt=NOW - H, status="closed")
    assert matches("6358", dueAt=NOW + H) and not matches("6358", dueAt=NOW + H, status="closed")


def test_today_filters_follow_the_requests_timezone():
    # 16:30 UTC is 22:00 in Calcutta; a ticket due at 19:00 UTC is due tomorrow there.
    assert matches("6358", dueAt=NOW + 150 * 60_000, tz="UTC")
    assert not matches("6358", dueAt=NOW + 150 * 60_000, tz="Asia/Calcutta")
    created = NOW - 29 * H // 2  # 02:00 UTC on 2026-03-08, still 2026-03-07 21:00 in New York
    assert matches("5932", createdAt=created, tz="UTC")
    assert not matches("5932", createdAt=created, tz="America/New_York")


def test_overdue_and_sla_breached_flip_when_now_passes_the_timestamp():
    for fid, field in (("7440", "dueAt"), ("7474", "slaDueAt"),
                       ("01a12ac1-8f14-4600-a4ee-c930ee4057bf", "slaDueAt")):
        assert not matches(fid, now=NOW, **{field: NOW})
        assert matches(fid, now=NOW + 1, **{field: NOW})
        assert not matches(fid, now=NOW + 1, status="resolved", **{field: NOW})
        assert not matches(fid, now=NOW, **{field: None})


def test_sla_at_risk_is_now_to_one_hour_ahead():
    assert matches("7475", slaDueAt=NOW) and matches("7475", slaDueAt=NOW + H - 1)
    assert not matches("7475", slaDueAt=NOW + H) and not matches("7475", slaDueAt=NOW - 1)


def test_demo_filters():
    assert [(s.id, s.name, s.type) for s in DEMO_FILTERS] == [
        ("a7069dca-b9b1-4bf5-9a41-20dd75bf6f62", "VIP Customers", "custom"),
        ("01a12ac1-8f14-4600-a4ee-c930ee4057bf", "SLA Breached", "custom"),
        ("004ce44d-b69d-4acb-becd-78c3359e0002", "Unassigned > 24h", "custom")]
    vip, _, stale = (s.id for s in DEMO_FILTERS)
    assert matches(vip, tags=["vip"], status="closed") and not matches(vip, tags=["billing"])
    created = NOW - 24 * H
    assert not matches(stale, now=NOW, assigneeId=None, createdAt=created)
    assert matches(stale, now=NOW + 1, assigneeId=None, createdAt=created)
    assert not matches(stale, now=NOW + 1, assigneeId="bob", createdAt=created)


def test_summary_feeds():
    assert set(SUMMARY_FILTER_IDS) == {"totalOpen", "totalClosed", "slaBreached", "dueToday",
                                       "overdue"}
    assert [SUMMARY_FILTER_IDS[k] for k in ("slaBreached", "dueToday", "overdue")] \
        == ["7474", "6358", "7440"]
    assert {k: s.id for k, s in SUMMARY_FILTERS.items()} == dict(SUMMARY_FILTER_IDS)
    for status in STATUSES:  # open + closed partition every ticket, so they sum to `all`
        hits = [k for k in ("totalOpen", "totalClosed")
                if SUMMARY_FILTERS[k].definition.static_matches({"status": status}, ME)]
        assert hits == (["totalOpen"] if status in OPEN_STATUSES else ["totalClosed"])
        assert (status in CLOSED_STATUSES) == (hits == ["totalClosed"])


def test_internal_summary_ids_are_not_requestable():
    for spec in INTERNAL_FILTERS:
        assert not is_system_id(spec.id) and spec.id not in SYSTEM_BY_ID
    assert is_system_id("all") and is_system_id("7475") and not is_system_id("9999")
