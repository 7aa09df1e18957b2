"""Change events into SQL: dedupe, our ticket and notification copies, and the outbox, at once.

Every change that alters what counters see is recorded as {"before": ROW|null, "after": ROW|null}
in an outbox row of its counter group, in the same transaction as the change itself (design.md).
Rows are locked (PostgreSQL) or the database is (SQLite, BEGIN IMMEDIATE) before they are read,
so "before" is exactly what the row held, even with concurrent ingests.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Table, case, false, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tally.events.schemas import Event
from tally.stores import keys
from tally.stores.db import Database
from tally.stores.models import Notification, OutboxRow, SeenEvent, Ticket

CHANGES_PER_ROW = 200  # keeps one outbox row, and so one apply, small
SEEN_CHUNK = 500

_notifications: Table = Notification.__table__  # type: ignore[assignment]
_tickets: Table = Ticket.__table__  # type: ignore[assignment]
_outbox: Table = OutboxRow.__table__  # type: ignore[assignment]
_seen: Table = SeenEvent.__table__  # type: ignore[assignment]

# Ticket columns as they appear in an outbox ROW (camelCase, epoch ms), in model order.
TICKET_FIELDS = {"id": "id", "version": "version", "deleted": "deleted", "status": "status",
                 "priority": "priority", "team_id": "teamId", "assignee_id": "assigneeId",
                 "requester_id": "requesterId", "category": "category", "tags": "tags",
                 "is_support_request": "isSupportRequest", "created_at": "createdAt",
                 "due_at": "dueAt", "sla_due_at": "slaDueAt"}


@dataclass(frozen=True)
class IngestResult:
    """What one POST /events did: new and redelivered events, and the outbox rows it wrote."""

    accepted: int
    duplicates: int
    outbox_ids: tuple[int, ...] = ()

    @property
    def high_water(self) -> int | None:
        return max(self.outbox_ids) if self.outbox_ids else None


def _insert(session: Session, table: Table) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing()."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _newer(column: Any, at: int) -> Any:
    """updated_at never goes back, so max(updated_at) always equals the counters' lastUpdated."""
    return case((column > at, column), else_=at)


def notification_row(row: Any, **changes: Any) -> dict[str, Any]:
    base = {"id": row.id, "userId": row.user_id, "type": row.type, "priority": row.priority,
            "read": bool(row.read), "deleted": bool(row.deleted)}
    base.update(changes)
    return base


def ticket_row(values: Any) -> dict[str, Any]:
    get = values.get if isinstance(values, dict) else values._mapping.get
    row = {wire: get(name) for name, wire in TICKET_FIELDS.items()}
    row["deleted"] = bool(row["deleted"])
    row["isSupportRequest"] = bool(row["isSupportRequest"])
    row["tags"] = list(row["tags"] or [])
    return row


def write_outbox(session: Session, tenant: str, group: str, kind: str, at: int,
                 changes: Sequence[dict[str, Any]]) -> list[int]:
    """Record changes owed to one counter group; returns the new outbox ids (none if no change)."""
    ids = []
    for start in range(0, len(changes), CHANGES_PER_ROW):
        payload = {"kind": kind, "at": at, "changes": list(changes[start:start + CHANGES_PER_ROW])}
        stmt = _outbox.insert().values(tenant_id=tenant, group_key=group, created_at=at,
                                       payload=json.dumps(payload, separators=(",", ":")),
                                       applied_at=None).returning(_outbox.c.id)
        ids.append(int(session.execute(stmt).scalar_one()))
    return ids


def mark_notifications_read(session: Session, tenant: str, user: str, ids: list[str] | None,
                            at: int) -> int | None:
    """Mark a user's notifications read (ids None: all unread) inside the caller's transaction.

    Unknown ids, ids of another user, and read or deleted notifications are ignored. Returns the
    new outbox row's id, or None when nothing changed.
    """
    stmt = update(_notifications).where(
        _notifications.c.tenant_id == tenant, _notifications.c.user_id == user,
        _notifications.c.read == false(), _notifications.c.deleted == false())
    if ids is not None:
        wanted = sorted(set(ids))
        if not wanted:
            return None
        stmt = stmt.where(_notifications.c.id.in_(wanted))
    stmt = stmt.values(read=True, updated_at=_newer(_notifications.c.updated_at, at)).returning(
        _notifications.c.id, _notifications.c.user_id, _notifications.c.type,
        _notifications.c.priority, _notifications.c.read, _notifications.c.deleted)
    rows = sorted(session.execute(stmt).all(), key=lambda r: r.id)
    changes = [{"before": notification_row(r, read=False), "after": notification_row(r)}
               for r in rows]
    written = write_outbox(session, tenant, keys.notification_group(user), "notification", at,
                           changes)
    return written[-1] if written else None


@dataclass
class _Batch:
    """The state of one ingest: the session, and the changes owed per counter group."""

    session: Session
    tenant: str
    at: int
    groups: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    outbox_ids: list[int] = field(default_factory=list)

    def owe(self, group: str, kind: str, before: Any, after: Any) -> None:
        self.groups.setdefault(group, (kind, []))[1].append({"before": before, "after": after})

    def flush(self) -> list[int]:
        for group, (kind, changes) in self.groups.items():
            self.outbox_ids += write_outbox(self.session, self.tenant, group, kind, self.at,
                                            changes)
        self.groups.clear()
        return self.outbox_ids

    def ticket(self, ticket_id: str) -> Any:
        """The stored ticket, locked for the rest of the transaction, or None."""
        stmt = select(_tickets).where(_tickets.c.tenant_id == self.tenant,
                                      _tickets.c.id == ticket_id).with_for_update()
        return self.session.execute(stmt).first()

    def insert_ticket(self, values: dict[str, Any]) -> bool:
        """Insert a ticket unless one with its id exists (also one inserted concurrently)."""
        stmt = _insert(self.session, _tickets).values(tenant_id=self.tenant, **values)
        stmt = stmt.on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        return self.session.execute(stmt.returning(_tickets.c.id)).first() is not None

    def update_ticket(self, ticket_id: str, values: dict[str, Any]) -> None:
        self.session.execute(update(_tickets).where(
            _tickets.c.tenant_id == self.tenant, _tickets.c.id == ticket_id).values(**values))


def _ticket_upserted(batch: _Batch, data: dict[str, Any]) -> None:
    values = {name: data[name] for name in TICKET_FIELDS if name != "deleted"}
    values["deleted"] = False
    current = batch.ticket(data["id"])
    if current is None:
        if batch.insert_ticket(values):
            batch.owe(keys.TICKETS_GROUP, "ticket", None, ticket_row(values))
            return
        current = batch.ticket(data["id"])
    if data["version"] <= current.version:
        return  # stale or redelivered: the stored version wins
    batch.update_ticket(data["id"], values)
    # Even a bare version bump is owed: timed cells hold members '<id>:<version>'.
    batch.owe(keys.TICKETS_GROUP, "ticket", ticket_row(current), ticket_row(values))


def _ticket_deleted(batch: _Batch, data: dict[str, Any]) -> None:
    tombstone = {name: None for name in TICKET_FIELDS}
    tombstone.update(id=data["id"], version=data["version"], deleted=True, tags=[],
                     is_support_request=False)
    current = batch.ticket(data["id"])
    if current is None:
        if batch.insert_ticket(tombstone):
            return  # never counted: the tombstone only keeps later stale upserts out
        current = batch.ticket(data["id"])
    if data["version"] < current.version:
        return
    if current.deleted:
        if data["version"] > current.version:
            batch.update_ticket(data["id"], {"version": data["version"]})
        return
    batch.update_ticket(data["id"], {"version": data["version"], "deleted": True})
    before = ticket_row(current)
    after = {**before, "version": data["version"], "deleted": True}
    batch.owe(keys.TICKETS_GROUP, "ticket", before, after)


def _notification_created(batch: _Batch, data: dict[str, Any]) -> None:
    stmt = _insert(batch.session, _notifications).values(
        tenant_id=batch.tenant, id=data["id"], user_id=data["user_id"], type=data["type"],
        ticket_id=data["ticket_id"], priority=data["priority"], created_at=data["created_at"],
        read=False, deleted=False, updated_at=batch.at)
    stmt = stmt.on_conflict_do_nothing(index_elements=["tenant_id", "id"])
    if batch.session.execute(stmt.returning(_notifications.c.id)).first() is None:
        return  # the id exists (live or deleted): a notification is created once
    row = {"id": data["id"], "userId": data["user_id"], "type": data["type"],
           "priority": data["priority"], "read": False, "deleted": False}
    batch.owe(keys.notification_group(data["user_id"]), "notification", None, row)


def _notification_read(batch: _Batch, data: dict[str, Any]) -> None:
    written = mark_notifications_read(batch.session, batch.tenant, data["user_id"], data["ids"],
                                      batch.at)
    if written is not None:
        batch.outbox_ids.append(written)


def _notification_deleted(batch: _Batch, data: dict[str, Any]) -> None:
    stmt = update(_notifications).where(
        _notifications.c.tenant_id == batch.tenant, _notifications.c.id == data["id"],
        _notifications.c.deleted == false(),
    ).values(deleted=True, updated_at=_newer(_notifications.c.updated_at, batch.at)).returning(
        _notifications.c.id, _notifications.c.user_id, _notifications.c.type,
        _notifications.c.priority, _notifications.c.read, _notifications.c.deleted)
    row = batch.session.execute(stmt).first()
    if row is not None:
        batch.owe(keys.notification_group(row.user_id), "notification",
                  notification_row(row, deleted=False), notification_row(row))


HANDLERS: dict[str, Callable[[_Batch, dict[str, Any]], None]] = {
    "ticket.upserted": _ticket_upserted,
    "ticket.deleted": _ticket_deleted,
    "notification.created": _notification_created,
    "notification.read": _notification_read,
    "notification.deleted": _notification_deleted,
}


def _claim(session: Session, tenant: str, event_ids: Iterable[str], now_ms: int) -> set[str]:
    """Record event ids as seen; returns those not seen before (this batch included).

    Ids are claimed in sorted order so concurrent batches take their locks in the same order.
    """
    unique = sorted(set(event_ids))
    fresh: set[str] = set()
    for start in range(0, len(unique), SEEN_CHUNK):
        rows = [{"tenant_id": tenant, "event_id": event_id, "received_at": now_ms}
                for event_id in unique[start:start + SEEN_CHUNK]]
        stmt = _insert(session, _seen).values(rows).on_conflict_do_nothing(
            index_elements=["tenant_id", "event_id"]).returning(_seen.c.event_id)
        fresh.update(session.execute(stmt).scalars())
    return fresh


def ingest(db: Database, tenant: str, events: Sequence[Event], now_ms: int) -> IngestResult:
    """Apply a batch of events to SQL, all or nothing; a redelivered eventId is a no-op.

    A transaction the database aborts to break a deadlock with a concurrent batch is run again.
    """
    return db.write_retrying(lambda session: _ingest_once(session, tenant, events, now_ms))


def _ingest_once(session: Session, tenant: str, events: Sequence[Event],
                 now_ms: int) -> IngestResult:
    fresh = _claim(session, tenant, (event.event_id for event in events), now_ms)
    batch = _Batch(session, tenant, now_ms)
    accepted = 0
    for event in events:
        if event.event_id not in fresh:
            continue
        fresh.discard(event.event_id)  # a second copy in the same batch is a duplicate
        HANDLERS[event.type](batch, event.data)
        accepted += 1
    outbox_ids = batch.flush()
    return IngestResult(accepted, len(events) - accepted, tuple(sorted(outbox_ids)))
