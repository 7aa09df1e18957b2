"""Ticket cells from SQL: one conditional-aggregate query answers every cell of a request."""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from sqlalchemy import ColumnElement, and_, case, func, or_, select, true
from sqlalchemy.orm import Session

from tally.counting.predicates import Materialized
from tally.stores.models import OutboxRow, Ticket
from tally.stores.sql_filters import predicate, window
from tally.stores.ticket_counters import Cell

SUPPORT = "sr:"


def bucket_predicate(bucket: str) -> ColumnElement[bool]:
    """SQL for a scope bucket name of counting/visibility.py (`sr:` = support requests only)."""
    parts = []
    if bucket.startswith(SUPPORT):
        parts.append(Ticket.is_support_request.is_(True))
        bucket = bucket[len(SUPPORT):]
    kind, _, rest = bucket.partition(":")
    if kind == "team":
        parts.append(Ticket.team_id == rest)
    elif kind == "asg":
        parts.append(Ticket.assignee_id == rest)
    elif kind == "req":
        parts.append(Ticket.requester_id == rest)
    elif kind == "asgteam":
        length, _, tail = rest.partition(":")
        size = int(length)
        parts += [Ticket.assignee_id == tail[:size], Ticket.team_id == tail[size + 1:]]
    elif kind != "all":
        raise ValueError(f"unknown bucket {bucket!r}")
    return and_(true(), *parts)


def _live(tenant: str) -> list[ColumnElement[bool]]:
    return [Ticket.tenant_id == tenant, Ticket.deleted.is_(False)]


def cell_counts(session: Session, tenant: str, cells: Sequence[Cell],
                windows: Sequence[tuple[float, float] | None]) -> list[int]:
    """Every cell's count (timed cells within their window) from one query."""
    dialect = session.get_bind().dialect.name
    columns = []
    for cell, span in zip(cells, windows):
        condition = and_(predicate(cell.mp.root, dialect), bucket_predicate(cell.bucket))
        if span is not None:
            lo, hi = span
            condition = and_(condition, window(cell.mp.score_field,
                                               None if lo == float("-inf") else int(lo), int(hi)))
        columns.append(func.coalesce(func.sum(case((condition, 1), else_=0)), 0))
    if not columns:
        return []
    scope = or_(*[bucket_predicate(b) for b in dict.fromkeys(c.bucket for c in cells)])
    row = session.execute(select(*columns).where(*_live(tenant), scope)).one()
    return [int(value) for value in row]


TICKET_FIELDS = {"id": Ticket.id, "version": Ticket.version, "status": Ticket.status,
                 "priority": Ticket.priority, "teamId": Ticket.team_id,
                 "assigneeId": Ticket.assignee_id, "requesterId": Ticket.requester_id,
                 "category": Ticket.category, "tags": Ticket.tags,
                 "isSupportRequest": Ticket.is_support_request, "createdAt": Ticket.created_at,
                 "dueAt": Ticket.due_at, "slaDueAt": Ticket.sla_due_at}


def matching_tickets(session: Session, tenant: str,
                     cells: Sequence[Cell]) -> Iterable[dict[str, Any]]:
    """Live tickets that may fall in any of `cells`, as camelCase rows (SQL narrows, Python
    decides)."""
    if not cells:
        return []
    dialect = session.get_bind().dialect.name
    scope = or_(*[and_(predicate(cell.mp.root, dialect), bucket_predicate(cell.bucket))
                  for cell in cells])
    names = list(TICKET_FIELDS)
    query = select(*TICKET_FIELDS.values()).where(*_live(tenant), scope)
    return ({**dict(zip(names, row)), "deleted": False}
            for row in session.execute(query.execution_options(yield_per=2000)))


def recent_outbox(session: Session, tenant: str, group: str,
                  applied_since_ms: int) -> list[tuple[int, dict[str, Any]]]:
    """Outbox rows of a group that a worker may still apply: unapplied, or applied recently."""
    query = (select(OutboxRow.id, OutboxRow.payload)
             .where(OutboxRow.tenant_id == tenant, OutboxRow.group_key == group,
                    or_(OutboxRow.applied_at.is_(None), OutboxRow.applied_at > applied_since_ms))
             .order_by(OutboxRow.id))
    return [(row_id, json.loads(payload)) for row_id, payload in session.execute(query)]


def plain_mps(cells: Sequence[Cell]) -> list[Materialized]:
    return list({c.mp.id: c.mp for c in cells if c.mp.score_field is None}.values())
