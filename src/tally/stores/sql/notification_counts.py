"""The SQL side of notification counting: one conditional-aggregate query per user, and the list."""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, NotificationCounts
from tally.stores.sql.models import Notification, OutboxRow

N = Notification


def _count_where(condition: Any) -> Any:
    """count(CASE WHEN condition THEN 1 END): zero, not NULL, over no rows, on every dialect."""
    return func.count(case((condition, literal(1))))


def notification_counts(session: Session, tenant: str, user: str) -> NotificationCounts:
    """One user's counters in one query: total, unread, unread by type and priority, lastUpdated."""
    live = N.deleted.is_(False)
    unread = and_(live, N.read.is_(False))
    columns = [_count_where(live), _count_where(unread)]
    columns += [_count_where(and_(unread, N.type == t)) for t in NOTIFICATION_TYPES]
    columns += [_count_where(and_(unread, N.priority == p)) for p in PRIORITIES]
    columns.append(func.max(N.updated_at))  # deleted rows count: their deletion was a change
    row = session.execute(
        select(*columns).where(N.tenant_id == tenant, N.user_id == user)).one()
    values = [int(v) for v in row[:-1]]
    types = len(NOTIFICATION_TYPES)
    return NotificationCounts(
        total=values[0],
        unread=values[1],
        by_type=dict(zip(NOTIFICATION_TYPES, values[2:2 + types])),
        by_priority=dict(zip(PRIORITIES, values[2 + types:])),
        last_updated=int(row[-1]) if row[-1] is not None else None,
    )


def group_outbox_ids(session: Session, tenant: str, group: str) -> list[int]:
    """Ids of every outbox row of one counter group, applied or not (a rebuild's snapshot ids)."""
    query = select(OutboxRow.id).where(OutboxRow.tenant_id == tenant,
                                       OutboxRow.group_key == group).order_by(OutboxRow.id)
    return [int(i) for i in session.scalars(query)]


def group_has_pending(session: Session, tenant: str, group: str) -> bool:
    """Whether any outbox row of the group still waits to be applied (its counters may lag SQL)."""
    query = select(OutboxRow.id).where(OutboxRow.tenant_id == tenant,
                                       OutboxRow.group_key == group,
                                       OutboxRow.applied_at.is_(None)).limit(1)
    return session.scalar(query) is not None


def notification_users(session: Session, tenant: str) -> list[str]:
    """Every user with a notification row in the tenant (deleted ones included), sorted."""
    query = select(N.user_id).where(N.tenant_id == tenant).distinct().order_by(N.user_id)
    return list(session.scalars(query))


def list_notifications(session: Session, tenant: str, user: str, limit: int,
                       unread: bool | None = None, type_: str | None = None,
                       after: tuple[int, str] | None = None) -> Sequence[Any]:
    """Up to `limit` live notifications, newest first by (created_at, id), after a keyset cursor.

    unread=True keeps unread ones, False read ones, None both; rows carry id, type, ticket_id,
    priority, created_at and read.
    """
    query = select(N.id, N.type, N.ticket_id, N.priority, N.created_at, N.read).where(
        N.tenant_id == tenant, N.user_id == user, N.deleted.is_(False))
    if unread is not None:
        query = query.where(N.read.is_(not unread))
    if type_ is not None:
        query = query.where(N.type == type_)
    if after is not None:
        created, ident = after
        query = query.where(or_(N.created_at < created,
                                and_(N.created_at == created, N.id < ident)))
    query = query.order_by(N.created_at.desc(), N.id.desc()).limit(limit)
    return session.execute(query).all()
