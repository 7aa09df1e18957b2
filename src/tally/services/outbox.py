"""The outbox's life after ingest: apply pending rows to the counters, find the lagging, prune.

A row is applied by RedisCounters.apply (atomic, once per outbox id), then marked applied in SQL,
then the tenant's applied watermark is raised (services/watermarks.py). A crash between the
first two leaves the row pending; its next apply is a no-op thanks to the dedupe set. Rows are
read APPLY_BATCH_SIZE at a time and turned into counter ops APPLY_CHANGES at a time (a row holds
up to 200 changes, each with ops on many cells), which bounds a batch's memory.
Rows are pruned only after their dedupe entries are dropped, and only once applied for longer
than OUTBOX_RETENTION_SECONDS (well beyond JOB_TIMEOUT, so no job can still hold them).

Apply jobs coalesce (`request_apply`): a commit enqueues a job only when no job enqueued before
it is still waiting to start, since that job reads the outbox after it starts and so sees the
commit. Under a steady stream of POSTs the worker then runs one job per pass, not one per POST.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import redis
from sqlalchemy import delete, func, select, update

from tally import jobs
from tally.core.clock import epoch_ms, utc_now
from tally.errors import GuardChanged, RebuildBusy, StoreUnavailable
from tally.services import watermarks
from tally.core.deltas import outbox_delta
from tally.stores import keys
from tally.stores.redis.counters import ApplyResult
from tally.stores.sql.db import Database
from tally.stores.sql.models import OutboxRow

if TYPE_CHECKING:
    from tally.services.container import Services

log = logging.getLogger("tally.services.outbox")

BUSY_RETRIES = 5
BUSY_SLEEP_SECONDS = 0.05
APPLY_CHANGES = 2000  # changes turned into ops, and applied, at once
PRUNE_CHUNK = 1000
NOTIFICATION_PREFIX = keys.notification_group("x")[:-1]  # "n:"
# How long an enqueued apply job stands in for later commits of its tenant. A job lost before it
# started (its worker killed) holds them up this long at most, and the sweep covers it anyway.
APPLY_QUEUED_SECONDS = 5
ParsedRow = tuple[int, str, dict[str, Any]]  # outbox id, group, payload


@dataclass
class ApplyReport:
    """What one apply_pending call did: rows taken, newly applied, already applied, batches."""

    rows: int = 0
    applied: int = 0
    duplicates: int = 0
    batches: int = 0
    more: bool = False  # stopped at its time budget with rows perhaps still pending
    last_id: int | None = None  # the newest outbox id taken


def _now(services: "Services") -> int:
    return epoch_ms(services.clock())


def apply_queued_key(tenant: str) -> str:
    """The queue Redis key saying an apply job of `tenant` is enqueued and has not started."""
    return f"tally-apply:queued:{tenant}"


def request_apply(services: "Services", tenant: str, high_water: int) -> None:
    """After a commit: make sure an apply job reads the tenant's outbox later than now.

    Enqueues one unless a job enqueued earlier has not started yet: each job clears the key
    before it reads the outbox (apply_pending), so the key present now means that read is still
    to come. With the queue Redis down the enqueue is attempted anyway (it logs the outage; the
    sweep catches up), and a failed enqueue clears the key so the next commit tries again.
    """
    queue_redis = services.queue_redis
    key = apply_queued_key(tenant)
    try:
        first = bool(queue_redis.set(key, high_water, nx=True, ex=APPLY_QUEUED_SECONDS))
    except redis.RedisError:
        first = True
    if not first:
        return
    if jobs.enqueue_apply(queue_redis, tenant, high_water,
                          job_timeout=int(services.config.JOB_TIMEOUT)) is None:
        _forget_queued(services, tenant)


def _forget_queued(services: "Services", tenant: str) -> None:
    try:
        services.queue_redis.delete(apply_queued_key(tenant))
    except redis.RedisError as error:  # the key expires; meanwhile the sweep covers the tenant
        log.warning("tenant %s: could not clear the queued-apply key: %s", tenant, error)


def _apply(services: "Services", tenant: str, rows: Sequence[ParsedRow]) -> ApplyResult:
    """counters.apply, waiting briefly while a rebuild holds a touched group.

    Ticket rows are turned into ops against the tenant's registered predicates, and the apply is
    guarded by the registry's version: if a predicate was registered meanwhile, the ops are
    recomputed with it (else its freshly rebuilt cells would miss this delta).
    """
    has_tickets = any(group == keys.TICKETS_GROUP for _, group, _ in rows)
    for attempt in range(BUSY_RETRIES + 1):
        guards: list[tuple[str, str]] = []
        mps: list[Any] = []
        if has_tickets:
            registry = services.ticket_counters.registry(tenant)
            mps = list(registry.mps.values())
            guards = [(keys.mp_version_key(tenant), registry.version)]
        deltas = [outbox_delta(row_id, payload, mps) for row_id, _, payload in rows]
        try:
            return services.counters.apply(tenant, deltas, _now(services), guards)
        except (RebuildBusy, GuardChanged):
            if attempt == BUSY_RETRIES:
                raise
            time.sleep(BUSY_SLEEP_SECONDS)
    raise AssertionError("unreachable")


def _notify(services: "Services", tenant: str, rows: Sequence[Any]) -> None:
    """Tell stream listeners whose counters may have changed; best effort, counters are right."""
    users = sorted({row.group_key[len(NOTIFICATION_PREFIX):] for row in rows
                    if row.group_key.startswith(NOTIFICATION_PREFIX)})
    try:
        services.counters.publish_many(
            tenant, [keys.stream_channel(tenant, user) for user in users], "changed")
    except StoreUnavailable as error:
        log.warning("tenant %s: could not notify streams: %s", tenant, error.message)


def _apply_rows(services: "Services", tenant: str, rows: Sequence[Any],
                report: ApplyReport) -> None:
    if not rows:
        return
    parsed = [(row.id, row.group_key, json.loads(row.payload)) for row in rows]
    applied = duplicates = 0
    for part in _by_changes(parsed, APPLY_CHANGES):
        result = _apply(services, tenant, part)
        applied, duplicates = applied + result.applied, duplicates + result.duplicates
    _notify(services, tenant, rows)  # the counters have changed: tell streams before marking
    ids = [row.id for row in rows]
    with services.db.write() as session:
        session.execute(update(OutboxRow).where(OutboxRow.id.in_(ids),
                                                OutboxRow.applied_at.is_(None))
                        .values(applied_at=_now(services)))
    watermarks.advance(services, tenant)  # after the mark: it claims only rows applied in SQL
    report.rows += len(rows)
    report.applied += applied
    report.duplicates += duplicates
    report.batches += 1
    report.last_id = rows[-1].id
    _record_applied(services.queue_redis, applied)  # for /metrics, best effort


def _record_applied(queue_redis: redis.Redis, applied: int) -> None:
    """Add to the events-applied total in the queue Redis; best effort (a metric, not a count)."""
    if applied <= 0:
        return
    try:
        queue_redis.incrby(keys.EVENTS_APPLIED_KEY, applied)
    except redis.RedisError as error:
        log.debug("events applied not recorded: %s", error)


def _by_changes(rows: list[ParsedRow], size: int) -> list[list[ParsedRow]]:
    """Consecutive runs of rows holding about `size` changes each (a row is never split)."""
    parts: list[list[ParsedRow]] = [[]]
    changes = 0
    for row in rows:
        if parts[-1] and changes >= size:
            parts.append([])
            changes = 0
        parts[-1].append(row)
        changes += len(row[2]["changes"])
    return parts


def _pending(tenant: str) -> Any:
    return select(OutboxRow.id, OutboxRow.group_key, OutboxRow.payload).where(
        OutboxRow.tenant_id == tenant, OutboxRow.applied_at.is_(None))


def apply_pending(services: "Services", tenant: str, *, ids: list[int] | None = None,
                  limit: int | None = None, budget_seconds: float | None = None) -> ApplyReport:
    """Apply a tenant's pending outbox rows (or exactly `ids`, if still pending) to the counters.

    Without ids: every row pending when the call starts, in id order, APPLY_BATCH_SIZE at a time,
    at most `limit` rows, and no new batch once `budget_seconds` have passed (the report then
    says `more`); it first clears the tenant's queued-apply key (see request_apply). Raises
    RebuildBusy when a rebuild outlasts the brief retries, and StoreUnavailable when Redis is
    down; the rows then stay pending for a later job or the sweep.
    """
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    size = int(services.config.APPLY_BATCH_SIZE)
    report = ApplyReport()
    db = services.db
    if ids is not None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), size):
            with db.snapshot() as session:
                rows = session.execute(_pending(tenant).where(
                    OutboxRow.id.in_(wanted[start:start + size])).order_by(OutboxRow.id)).all()
            _apply_rows(services, tenant, rows, report)
        return report
    _forget_queued(services, tenant)  # commits from now on need a job of their own
    after, high = 0, None
    while limit is None or report.rows < limit:
        take = size if limit is None else min(size, limit - report.rows)
        with db.snapshot() as session:
            query = _pending(tenant).where(OutboxRow.id > after)
            if high is not None:
                query = query.where(OutboxRow.id <= high)
            rows = session.execute(query.order_by(OutboxRow.id).limit(take)).all()
            if rows and high is None:  # the rows pending now bound the call: one query, mostly
                high = rows[-1].id if len(rows) < take else _newest_pending(session, tenant)
        if not rows:
            break
        _apply_rows(services, tenant, rows, report)
        after = rows[-1].id
        if len(rows) < take:  # none left up to `high`: spare the query that would say so
            break
        if deadline is not None and time.monotonic() >= deadline:
            report.more = True
            break
    return report


def pending_tenants(db: Database, older_than_ms: int) -> list[str]:
    """Tenants with an outbox row still unapplied that was written at or before `older_than_ms`."""
    with db.snapshot() as session:
        return sorted(session.scalars(select(OutboxRow.tenant_id).where(
            OutboxRow.applied_at.is_(None), OutboxRow.created_at <= older_than_ms).distinct()))


def high_water(db: Database, tenant: str) -> int | None:
    """The newest pending outbox id of a tenant (what an apply job for it covers)."""
    with db.snapshot() as session:
        return _newest_pending(session, tenant)


def _newest_pending(session: Any, tenant: str) -> int | None:
    return session.scalar(select(func.max(OutboxRow.id)).where(
        OutboxRow.tenant_id == tenant, OutboxRow.applied_at.is_(None)))


def prune(services: "Services", now_ms: int) -> int:
    """Delete rows applied longer ago than the retention, dedupe entries first; returns how many.

    The newest row of the table is always kept: SQLite numbers a new row max(id) + 1, so pruning
    every row would hand out ids again, and an id must stay unique (the dedupe set, apply job ids).
    """
    cutoff = now_ms - int(services.config.OUTBOX_RETENTION_SECONDS) * 1000
    newest = select(func.max(OutboxRow.id)).scalar_subquery()
    removed = 0
    while True:
        with services.db.snapshot() as session:
            rows = session.execute(select(OutboxRow.id, OutboxRow.tenant_id).where(
                OutboxRow.applied_at.is_not(None), OutboxRow.applied_at < cutoff,
                OutboxRow.id < newest)
                .order_by(OutboxRow.id).limit(PRUNE_CHUNK)).all()
        if not rows:
            return removed
        by_tenant: dict[str, list[int]] = {}
        for row in rows:
            by_tenant.setdefault(row.tenant_id, []).append(int(row.id))
        for tenant, ids in by_tenant.items():
            services.counters.forget_applied(tenant, ids)  # never delete a row still deduped
            with services.db.write() as session:
                removed += session.execute(delete(OutboxRow).where(OutboxRow.id.in_(ids))).rowcount


def backlog(db: Database, now_ms: int | None = None) -> tuple[int, int]:
    """Pending outbox rows of every tenant and the age of the oldest in ms (0 when none)."""
    now_ms = epoch_ms(utc_now()) if now_ms is None else now_ms
    with db.snapshot() as session:
        count, oldest = session.execute(select(func.count(), func.min(OutboxRow.created_at))
                                        .where(OutboxRow.applied_at.is_(None))).one()
    return int(count), max(0, now_ms - int(oldest)) if oldest is not None else 0
