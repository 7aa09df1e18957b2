"""What a rebuild reads besides counts: the live tickets that may fall in cells, the members of
timed cells, and a group's outbox rows a worker may still apply."""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from tally.core.cells import Cell, CellId
from tally.stores.sql.conditions import predicate
from tally.stores.sql.models import OutboxRow, Ticket
from tally.stores.sql.ticket_grouping import dimensions
from tally.stores.sql.ticket_scope import Bucket, ScopedRows, bucket_predicate, live


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
    query = select(*TICKET_FIELDS.values()).where(*live(tenant), scope)
    return ({**dict(zip(names, row)), "deleted": False}
            for row in session.execute(query.execution_options(yield_per=2000)))


SCORE_COLUMNS = {"createdAt": Ticket.created_at, "dueAt": Ticket.due_at,
                 "slaDueAt": Ticket.sla_due_at}


def timed_members(session: Session, tenant: str,
                  cells: Sequence[Cell]) -> dict[CellId, dict[str, int]]:
    """Per timed cell (by id), the members it must hold: `<id>:<version>` → score.

    One query: SQL evaluates each MP's predicate (a flag per MP) over the live tickets of the
    cells' buckets that some MP matches with a score, and collapses the bucket columns as
    cell_counts does; Python only files each row under the cells of its (few) column values.
    """
    out: dict[CellId, dict[str, int]] = {cell.id: {} for cell in cells}
    if not cells:
        return out
    dialect = session.get_bind().dialect.name
    mps = list({cell.mp.id: cell.mp for cell in cells}.values())
    parsed = {name: Bucket.parse(name) for name in dict.fromkeys(c.bucket for c in cells)}
    dims = dimensions(list(parsed.values()))
    matches = [and_(predicate(mp.root, dialect), SCORE_COLUMNS[mp.score_field].is_not(None))
               for mp in mps]
    scores = [SCORE_COLUMNS[mp.score_field] for mp in mps]
    scoped = ScopedRows(tenant, parsed, dialect)
    columns = [Ticket.id, Ticket.version, *dims.values(),
               *[case((match, score), else_=None) for match, score in zip(matches, scores)]]
    query = select(*[scoped.on(column) for column in columns]).select_from(scoped.rows) \
        .where(*scoped.where, scoped.on(or_(*matches)))
    width = 2 + len(dims)
    # Per distinct collapsed (team, assignee, requester, support): per MP, the cells to fill.
    targets: dict[tuple[Any, ...], list[list[dict[str, int]]]] = {}
    result = session.connection().execute(query.execution_options(yield_per=5000))
    for rows in result.partitions():
        for row in rows:
            key = tuple(row[2:width])
            fill = targets.get(key)
            if fill is None:
                group = dict(zip(dims, key))
                fill = targets[key] = [[out[c.id] for c in cells
                                        if c.mp.id == mp.id and parsed[c.bucket].holds(group)]
                                       for mp in mps]
            member = f"{row[0]}:{row[1]}"
            for score, members in zip(row[width:], fill):
                if score is not None:
                    for found in members:
                        found[member] = int(score)
    return out


def recent_outbox(session: Session, tenant: str, group: str,
                  applied_since_ms: int) -> list[tuple[int, dict[str, Any]]]:
    """Outbox rows of a group that a worker may still apply: unapplied, or applied recently."""
    query = (select(OutboxRow.id, OutboxRow.payload)
             .where(OutboxRow.tenant_id == tenant, OutboxRow.group_key == group,
                    or_(OutboxRow.applied_at.is_(None), OutboxRow.applied_at > applied_since_ms))
             .order_by(OutboxRow.id))
    return [(row_id, json.loads(payload)) for row_id, payload in session.execute(query)]
