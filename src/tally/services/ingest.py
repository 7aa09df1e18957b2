"""Change events into SQL: dedupe, our ticket and notification copies, and the outbox, at once.

Every change that alters what counters see is recorded as {"before": ROW|null, "after": ROW|null}
in an outbox row of its counter group, in the same transaction as the change itself (design.md).

A batch costs a few statements whatever its size (a 5,000-event call is not 5,000 round trips):

1. claim the event ids (multi-row INSERT ... ON CONFLICT DO NOTHING: redeliveries drop out;
   one later than the redelivery horizon, its id forgotten, runs again and changes nothing,
   see forget_seen);
2. lock and read every touched ticket and notification (SELECT ... FOR UPDATE in id order on
   PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the whole database), so "before" is exactly
   what the row held, even with concurrent ingests; except a notification that only
   `notification.created` names: it is new in the common case (ids are created once), so step 4
   finds out instead of a lock, and a typical batch of creations saves that round trip;
3. apply the events in order to those rows in memory, collecting the outbox changes;
4. insert the rows the batch creates (INSERT ... ON CONFLICT DO NOTHING); should one of them
   exist after all (a concurrent batch committed it since step 2, or a created id was stored
   already), that row is locked and read, and step 3 runs again with it;
5. write the changed rows (one executemany UPDATE per table) and the outbox rows (one INSERT),
   stamped with the tenant's next watermark (stores/sql/watermarks.py: a row lock held to commit,
   taken last, so it orders the tenant's commits without joining any lock cycle).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Table, case, delete, false, select, tuple_, update
from sqlalchemy.orm import Session

from tally.stores.sql.locked_rows import LockedRows, Row, chunks
from tally.stores.sql.locked_rows import dialect_insert as _insert
from tally.core.model import Event
from tally.stores import keys
from tally.stores.sql import watermarks
from tally.stores.sql.db import Database
from tally.stores.sql.models import Notification, OutboxRow, SeenEvent, Ticket

CHANGES_PER_ROW = 200  # keeps one outbox row, and so one apply, small
FORGET_BATCH = 1000  # seen event ids deleted per transaction: a short lock, even on SQLite

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
    """What one POST /events did: new and redelivered events, the outbox rows it wrote, and the
    tenant's watermark once it committed (its own, or the current one when it wrote none)."""

    accepted: int
    duplicates: int
    outbox_ids: tuple[int, ...] = ()
    watermark: int = 0

    @property
    def high_water(self) -> int | None:
        return max(self.outbox_ids) if self.outbox_ids else None


def _newer(column: Any, at: int) -> Any:
    """updated_at never goes back, so max(updated_at) always equals the counters' lastUpdated."""
    return case((column > at, column), else_=at)


def notification_row(row: Any, **changes: Any) -> dict[str, Any]:
    """A notification (a stored row or a column dict) as an outbox ROW."""
    get = row._mapping if hasattr(row, "_mapping") else row
    base = {"id": get["id"], "userId": get["user_id"], "type": get["type"],
            "priority": get["priority"], "read": bool(get["read"]),
            "deleted": bool(get["deleted"])}
    base.update(changes)
    return base


def ticket_row(values: Any) -> dict[str, Any]:
    get = values.get if isinstance(values, dict) else values._mapping.get
    row = {wire: get(name) for name, wire in TICKET_FIELDS.items()}
    row["deleted"] = bool(row["deleted"])
    row["isSupportRequest"] = bool(row["isSupportRequest"])
    row["tags"] = list(row["tags"] or [])
    return row


def _insert_outbox(session: Session, tenant: str, at: int,
                   owed: Iterable[tuple[str, str, Sequence[dict[str, Any]]]]
                   ) -> tuple[list[int], int | None]:
    """Write outbox rows of (group, kind, changes), CHANGES_PER_ROW changes at most per row, in
    one multi-row INSERT, all stamped with the tenant's next watermark; returns the new ids and
    that watermark (none and None when nothing changed)."""
    rows = [{"tenant_id": tenant, "group_key": group, "created_at": at, "applied_at": None,
             "payload": json.dumps({"kind": kind, "at": at, "changes": list(part)},
                                   separators=(",", ":"))}
            for group, kind, changes in owed for part in chunks(changes, CHANGES_PER_ROW)]
    if not rows:
        return [], None
    watermark = watermarks.bump(session, tenant)
    for row in rows:
        row["watermark"] = watermark
    return [int(i) for i in session.execute(_outbox.insert().returning(_outbox.c.id), rows)
            .scalars()], watermark


def write_outbox(session: Session, tenant: str, group: str, kind: str, at: int,
                 changes: Sequence[dict[str, Any]]) -> list[int]:
    """Record changes owed to one counter group; returns the new outbox ids (none if no change)."""
    return _insert_outbox(session, tenant, at, [(group, kind, changes)])[0]


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
    """The state of one ingest: its rows, and the changes owed per counter group."""

    session: Session
    tenant: str
    at: int
    tickets: LockedRows
    notifications: LockedRows
    groups: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # Each notification.read event gets an outbox row of its own, in event order.
    reads: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)

    def owe(self, group: str, kind: str, before: Any, after: Any) -> None:
        self.groups.setdefault(group, (kind, []))[1].append({"before": before, "after": after})

    def restart(self) -> None:
        self.groups, self.reads = {}, []
        self.tickets.restart()
        self.notifications.restart()

    def owed(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        return self.reads + [(group, kind, changes) for group, (kind, changes) in
                             self.groups.items()]


def _ticket_upserted(batch: _Batch, data: dict[str, Any]) -> None:
    values = {name: data[name] for name in TICKET_FIELDS if name != "deleted"}
    values["deleted"] = False
    current = batch.tickets.get(data["id"])
    if current is not None and data["version"] <= current["version"]:
        return  # stale or redelivered: the stored version wins
    batch.tickets.put(data["id"], values)
    # Even a bare version bump is owed: timed cells hold members '<id>:<version>'.
    batch.owe(keys.TICKETS_GROUP, "ticket", current and ticket_row(current), ticket_row(values))


def _ticket_deleted(batch: _Batch, data: dict[str, Any]) -> None:
    current = batch.tickets.get(data["id"])
    if current is None:
        tombstone: Row = {name: None for name in TICKET_FIELDS}
        tombstone.update(id=data["id"], version=data["version"], deleted=True, tags=[],
                         is_support_request=False)
        batch.tickets.put(data["id"], tombstone)
        return  # never counted: the tombstone only keeps later stale upserts out
    if data["version"] < current["version"]:
        return
    if current["deleted"]:
        if data["version"] > current["version"]:
            batch.tickets.put(data["id"], {**current, "version": data["version"]})
        return
    batch.tickets.put(data["id"], {**current, "version": data["version"], "deleted": True})
    before = ticket_row(current)
    after = {**before, "version": data["version"], "deleted": True}
    batch.owe(keys.TICKETS_GROUP, "ticket", before, after)


def _notification_created(batch: _Batch, data: dict[str, Any]) -> None:
    if batch.notifications.get(data["id"]) is not None:
        return  # the id exists (live or deleted): a notification is created once
    row = {"id": data["id"], "user_id": data["user_id"], "type": data["type"],
           "ticket_id": data["ticket_id"], "priority": data["priority"],
           "created_at": data["created_at"], "read": False, "deleted": False,
           "updated_at": batch.at}
    batch.notifications.put(data["id"], row)
    batch.owe(keys.notification_group(data["user_id"]), "notification", None,
              notification_row(row))


def _notification_read(batch: _Batch, data: dict[str, Any]) -> None:
    changes = []
    for nid in sorted(set(data["ids"])):
        row = batch.notifications.get(nid)
        if row is None or row["user_id"] != data["user_id"] or row["read"] or row["deleted"]:
            continue
        after = {**row, "read": True, "updated_at": max(row["updated_at"], batch.at)}
        batch.notifications.put(nid, after)
        changes.append({"before": notification_row(row), "after": notification_row(after)})
    if changes:
        batch.reads.append((keys.notification_group(data["user_id"]), "notification", changes))


def _notification_deleted(batch: _Batch, data: dict[str, Any]) -> None:
    row = batch.notifications.get(data["id"])
    if row is None or row["deleted"]:
        return
    after = {**row, "deleted": True, "updated_at": max(row["updated_at"], batch.at)}
    batch.notifications.put(data["id"], after)
    batch.owe(keys.notification_group(row["user_id"]), "notification", notification_row(row),
              notification_row(after))


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
    rows = [{"tenant_id": tenant, "event_id": event_id, "received_at": now_ms}
            for event_id in sorted(set(event_ids))]
    if not rows:
        return set()
    # An executemany: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues"), in order.
    stmt = _insert(session, _seen).on_conflict_do_nothing(
        index_elements=["tenant_id", "event_id"]).returning(_seen.c.event_id)
    return set(session.execute(stmt, rows).scalars())


def _to_lock(events: Sequence[Event]) -> tuple[set[str], set[str]]:
    """The ticket ids and notification ids to lock and read before the events run: all they
    name, but notifications named only by `notification.created` (see step 2 above)."""
    tickets: set[str] = set()
    notifications: set[str] = set()
    for event in events:
        if event.type.startswith("ticket."):
            tickets.add(event.data["id"])
        elif event.type == "notification.read":
            notifications.update(event.data["ids"])
        elif event.type != "notification.created":
            notifications.add(event.data["id"])
    return tickets, notifications


def ingest(db: Database, tenant: str, events: Sequence[Event], now_ms: int) -> IngestResult:
    """Apply a batch of events to SQL, all or nothing; a redelivered eventId is a no-op (a
    duplicate within the redelivery horizon, an accepted event changing nothing after it).

    A transaction the database aborts to break a deadlock with a concurrent batch is run again.
    """
    return db.write_retrying(lambda session: _ingest_once(session, tenant, events, now_ms))


def _ingest_once(session: Session, tenant: str, events: Sequence[Event],
                 now_ms: int) -> IngestResult:
    fresh = _claim(session, tenant, (event.event_id for event in events), now_ms)
    new_events = []
    for event in events:
        if event.event_id in fresh:
            fresh.discard(event.event_id)  # a second copy in the same batch is a duplicate
            new_events.append(event)
    batch = _Batch(session, tenant, now_ms, LockedRows(session, _tickets, tenant),
                   LockedRows(session, _notifications, tenant))
    ticket_ids, notification_ids = _to_lock(new_events)
    batch.tickets.lock(ticket_ids)
    batch.notifications.lock(notification_ids)
    while True:  # once, unless one of the rows we create exists after all (step 4)
        batch.restart()
        for event in new_events:
            HANDLERS[event.type](batch, event.data)
        if batch.tickets.insert_new() & batch.notifications.insert_new():
            break
    batch.tickets.write()
    batch.notifications.write()
    outbox_ids, watermark = _insert_outbox(session, tenant, now_ms, batch.owed())
    if watermark is None:  # nothing owed: the batch is covered by what was issued before it
        watermark = watermarks.issued(session, tenant)
    return IngestResult(len(new_events), len(events) - len(new_events), tuple(sorted(outbox_ids)),
                        watermark)


@dataclass(frozen=True)
class Forgotten:
    """What one forget_seen call did: ids deleted, and the transactions it took."""

    rows: int
    batches: int


def forget_seen(db: Database, before_ms: int, batch: int = FORGET_BATCH) -> Forgotten:
    """Delete the seen event ids received before `before_ms` (past the redelivery horizon),
    oldest first, `batch` per transaction, so no run holds a write lock for long.

    A redelivery of a forgotten id is claimed again and its handler runs once more; it counts
    nothing twice, because every handler is idempotent by the row it changes (docs/operations.md
    "The redelivery horizon"): an upsert or delete at a version the ticket already has or passed
    is ignored, a created notification id that exists (even deleted) is ignored, and read or
    deleted only changes a notification that is not read or deleted yet. Tickets (tombstones
    too) and notifications are never deleted, which is what makes forgetting ids safe.
    """
    oldest = select(_seen.c.tenant_id, _seen.c.event_id).where(
        _seen.c.received_at < before_ms).order_by(_seen.c.received_at).limit(batch)
    stmt = delete(_seen).where(tuple_(_seen.c.tenant_id, _seen.c.event_id).in_(oldest))
    rows = batches = 0
    while True:  # a batch that deadlocks with an ingest redelivering one of its ids runs again
        deleted = db.write_retrying(lambda session: session.execute(stmt).rowcount)
        rows, batches = rows + deleted, batches + 1
        if deleted < batch:
            return Forgotten(rows, batches)
