"""Compile the filter condition language (contract §5, placeholders resolved) into SQL.

Null is distinct from every value: `eq`/`in` never match a null column, `ne`/`not_in` do.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (ColumnElement, and_, false, func, literal, or_, select, true,
                        type_coerce)
from sqlalchemy.dialects.postgresql import JSONB

from tally.stores.sql.models import Ticket

COLUMNS = {
    "status": Ticket.status, "priority": Ticket.priority, "teamId": Ticket.team_id,
    "assigneeId": Ticket.assignee_id, "requesterId": Ticket.requester_id,
    "category": Ticket.category, "isSupportRequest": Ticket.is_support_request,
    "createdAt": Ticket.created_at, "dueAt": Ticket.due_at, "slaDueAt": Ticket.sla_due_at,
}


def _tags_contain(value: str, dialect: str) -> ColumnElement[bool]:
    """`value` is one of the ticket's tags (an array of strings): on PostgreSQL the jsonb column's
    `?` (a string element of the top-level array), on SQLite a json_each lookup."""
    if dialect == "postgresql":
        return type_coerce(Ticket.tags, JSONB).has_key(value)
    each = func.json_each(Ticket.tags).table_valued("value")
    return select(literal(1)).select_from(each).where(each.c.value == value).exists()


def leaf(condition: dict[str, Any], dialect: str) -> ColumnElement[bool]:
    field, op, value = condition["field"], condition["op"], condition.get("value")
    if field == "tags":
        if op == "contains":
            return _tags_contain(value, dialect)
        raise ValueError(f"tags only supports contains, not {op}")
    column = COLUMNS[field]
    if op == "eq":
        return and_(column.is_not(None), column == value)
    if op == "ne":
        return or_(column.is_(None), column != value)
    if op == "in":
        return and_(column.is_not(None), column.in_(list(value))) if value else false()
    if op == "not_in":
        return or_(column.is_(None), column.not_in(list(value))) if value else true()
    if op == "is_null":
        return column.is_(None)
    if op == "not_null":
        return column.is_not(None)
    raise ValueError(f"operator {op} has no SQL form")


def predicate(node: dict[str, Any] | None, dialect: str) -> ColumnElement[bool]:
    """A group {"all"|"any": [...]} or a leaf, as a boolean SQL expression (None = true)."""
    if node is None:
        return true()
    if "all" in node:
        parts = [predicate(child, dialect) for child in node["all"]]
        return and_(true(), *parts)
    if "any" in node:
        parts = [predicate(child, dialect) for child in node["any"]]
        return or_(false(), *parts)
    return leaf(node, dialect)


def window(field: str, lo_ms: int | None, hi_ms: int | None) -> ColumnElement[bool]:
    """A half-open time window [lo, hi) on a timestamp column; a null timestamp matches none."""
    column = COLUMNS[field]
    parts = [column.is_not(None)]
    if lo_ms is not None:
        parts.append(column >= lo_ms)
    if hi_ms is not None:
        parts.append(column < hi_ms)
    return and_(*parts)
