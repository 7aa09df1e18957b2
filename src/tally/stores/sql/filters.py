"""The filter repository: a tenant's system and custom filter rows, read and written in SQL.

Visibility (contract §3): a caller sees the system filters (owner_id null), their own custom
filters and every shared one; another user's private filter is invisible. Custom filters sort
after the system ones (position CUSTOM_POSITION), then by creation time and id.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session

from tally.errors import Forbidden
from tally.stores.sql.models import Filter

CUSTOM = "custom"
CUSTOM_POSITION = 1_000_000  # above every system filter's position
ORDER = (Filter.position, Filter.created_at, Filter.id)


def visible_to(user: str) -> ColumnElement[bool]:
    """The SQL form of `is_visible`: system rows, the user's own, and shared ones."""
    return or_(Filter.owner_id.is_(None), Filter.owner_id == user, Filter.shared.is_(True))


def is_visible(row: Filter, user: str) -> bool:
    """The same rule on a loaded row (kept next to its SQL form so the two cannot drift)."""
    return row.owner_id is None or row.owner_id == user or bool(row.shared)


def visible_filters(session: Session, tenant: str, user: str) -> list[Filter]:
    """The filters `user` may see in `tenant`, in (position, created_at, id) order."""
    query = select(Filter).where(Filter.tenant_id == tenant, visible_to(user)).order_by(*ORDER)
    return list(session.scalars(query))


def tenant_filters(session: Session, tenant: str) -> list[Filter]:
    """Every filter row of `tenant`, whoever owns it, in display order (for caches)."""
    query = select(Filter).where(Filter.tenant_id == tenant).order_by(*ORDER)
    return list(session.scalars(query))


def owned_count(session: Session, tenant: str, owner: str) -> int:
    """How many custom filters `owner` holds in `tenant`."""
    query = select(func.count()).select_from(Filter).where(Filter.tenant_id == tenant,
                                                           Filter.owner_id == owner)
    return int(session.scalar(query) or 0)


def create_filter(session: Session, tenant: str, owner: str, name: str, color: str | None,
                  shared: bool, conditions: dict[str, Any], now_ms: int) -> Filter:
    """Insert `owner`'s custom filter under a new UUID4 id; `conditions` is already validated."""
    row = Filter(tenant_id=tenant, id=str(uuid.uuid4()), name=name, kind=CUSTOM, color=color,
                 conditions=conditions, owner_id=owner, shared=shared, position=CUSTOM_POSITION,
                 created_at=now_ms)
    session.add(row)
    session.flush()
    return row


def delete_filter(session: Session, tenant: str, owner: str, filter_id: str) -> bool:
    """Delete `owner`'s custom filter `filter_id`; False when the caller sees no such filter.

    Which refusal: a filter the caller can see but does not own (a system filter, or another
    user's shared one) raises Forbidden (403): that it exists is no secret, only the right to
    remove it is missing. An id the caller cannot see (unknown, or another user's private filter)
    returns False, for a 404 that reveals nothing about other users' filters.
    """
    row = session.get(Filter, (tenant, filter_id))
    if row is None or not is_visible(row, owner):
        return False
    if row.owner_id != owner:
        what = "a system filter" if row.owner_id is None else "another user's filter"
        raise Forbidden(f"Filter {filter_id} is {what}; only your own filters can be deleted",
                        {"id": filter_id})
    result = session.execute(delete(Filter).where(Filter.tenant_id == tenant,
                                                  Filter.id == filter_id,
                                                  Filter.owner_id == owner))
    return bool(result.rowcount)
