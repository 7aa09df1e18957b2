"""The ground truth for tests: count by looping over tickets, written as plainly as the contract.

It shares only the static-condition evaluator with the rest of tally; visibility, the support
narrowing, time windows (by comparing local calendar dates) and the summary are re-derived here
from contract §5 so that counters, buckets and window bounds are checked against something else.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Iterable, Mapping

from tally.core.conditions import Definition, TimeCondition, as_zone
from tally.core.model import CLOSED_STATUSES, OPEN_STATUSES, Principal
from tally.errors import VisibilityDenied


def count(tickets: Iterable[Mapping[str, Any]], principal: Principal, view_type: str,
          filter_definitions: Mapping[str, Definition], profile_definition: Definition | None,
          now_ms: int, tz: str | tzinfo | None, support_only: bool
          ) -> tuple[dict[str, int], dict[str, int]]:
    """Counts per filter id and the summary, for what `principal` sees under `view_type`."""
    zone = as_zone(tz)
    if profile_definition is not None:
        profile_definition.check_profile()
    seen = []
    for ticket in tickets:
        if ticket.get("deleted") or not visible(ticket, principal, view_type):
            continue
        if support_only and not ticket.get("isSupportRequest"):
            continue
        if profile_definition and not profile_definition.static_matches(ticket, principal):
            continue
        seen.append(ticket)
    counts = {fid: sum(1 for t in seen if _matches(d, t, principal, now_ms, zone))
              for fid, d in filter_definitions.items()}
    open_ = [t for t in seen if t.get("status") in OPEN_STATUSES]
    summary = {
        "totalOpen": len(open_),
        "totalClosed": sum(1 for t in seen if t.get("status") in CLOSED_STATUSES),
        "slaBreached": sum(1 for t in open_ if _before(t.get("slaDueAt"), now_ms)),
        "dueToday": sum(1 for t in open_ if _same_day(t.get("dueAt"), now_ms, zone)),
        "overdue": sum(1 for t in open_ if _before(t.get("dueAt"), now_ms)),
    }
    return counts, summary


def visible(ticket: Mapping[str, Any], principal: Principal, view_type: str) -> bool:
    """Contract §5, word for word: user, agent, template (§2: ticket_service counts nothing)."""
    roles = principal.roles
    if not roles & {"ticket_user", "ticket_agent", "ticket_admin"}:
        raise VisibilityDenied("A counting role is required")
    is_admin = "ticket_admin" in roles
    is_agent = "ticket_agent" in roles
    mine = ticket.get("requesterId") == principal.user_id
    if view_type == "user":
        return mine
    if view_type == "agent" and not (is_admin or is_agent):
        raise VisibilityDenied("type=agent needs ticket_agent or ticket_admin")
    if view_type not in ("agent", "template"):
        raise ValueError(f"unknown type {view_type!r}")
    if is_admin:
        return True
    if is_agent:
        return (ticket.get("assigneeId") == principal.user_id
                or (ticket.get("teamId") is not None and ticket.get("teamId") in principal.teams))
    return mine


def _matches(definition: Definition, ticket: Mapping[str, Any], principal: Principal,
             now_ms: int, zone: tzinfo) -> bool:
    if not definition.static_matches(ticket, principal):
        return False
    condition = definition.time_condition
    return condition is None or _in_window(condition, ticket.get(condition.field), now_ms, zone)


def _in_window(condition: TimeCondition, value: int | None, now_ms: int, zone: tzinfo) -> bool:
    if value is None:
        return False
    span = (condition.seconds or 0) * 1000
    if condition.kind == "today":
        return _same_day(value, now_ms, zone)
    if condition.kind == "before_now":
        return value < now_ms
    if condition.kind == "within_next":
        return now_ms <= value < now_ms + span
    if condition.kind == "within_last":
        return now_ms - span <= value < now_ms
    assert condition.kind == "older_than", condition.kind
    return value < now_ms - span


def _before(value: int | None, now_ms: int) -> bool:
    return value is not None and value < now_ms


def _same_day(value: int | None, now_ms: int, zone: tzinfo) -> bool:
    """Same local calendar date; floor to whole seconds, as no zone offset has milliseconds."""
    if value is None:
        return False
    return (datetime.fromtimestamp(value // 1000, zone).date()
            == datetime.fromtimestamp(now_ms // 1000, zone).date())
