"""The notification read service: warm counters in one round trip, else a safe rebuild from SQL."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from tally.core.model import CountResult, NotificationCounts
from tally.errors import StoreUnavailable
from tally.stores import keys
from tally.stores.sql import notification_counts as sql_counts, watermarks
from tally.stores.redis.counters import Install, Write, notification_hash_from_counts

if TYPE_CHECKING:  # the Services bundle; imported for types only, so counting/ stays Flask-free
    from tally.services.container import Services

log = logging.getLogger("tally.services.notifications")

CACHE, RECOMPUTED, SQL = "cache", "recomputed", "sql"


@dataclass(frozen=True)
class Page:
    """One page of a user's notifications and the keyset position after it (None: last page)."""

    items: Sequence[Any]
    next_after: tuple[int, str] | None


def count(services: "Services", tenant: str, user: str) -> CountResult:
    """The user's counts: 'cache' when warm, 'recomputed' when cold, 'sql' without Redis."""
    try:
        cached = warm(services, tenant, user)
        if cached is not None:
            return cached
        result, _installed = recompute(services, tenant, user)
        return result
    except StoreUnavailable as error:
        log.warning("notification counts of %s/%s from SQL: %s", tenant, user, error.message)
        return sql_only(services, tenant, user)


def warm(services: "Services", tenant: str, user: str) -> CountResult | None:
    """The user's counts and the tenant's applied watermark from warm counters (one script),
    else None (count() recomputes them). Raises StoreUnavailable when Redis cannot be reached."""
    watermark, cached = services.counters.read_badge(tenant, user)
    return CountResult(cached, CACHE, watermark) if cached is not None else None


def rebuild_user(services: "Services", tenant: str, user: str) -> bool:
    """Recompute and install one user's counters; False when another rebuild held the group or
    the marker was lost (the counters stay as that other writer leaves them).

    Raises StoreUnavailable when Redis cannot be reached.
    """
    return recompute(services, tenant, user)[1]


def recompute(services: "Services", tenant: str, user: str) -> tuple[CountResult, bool]:
    """Count from one SQL snapshot under the group's rebuild marker and install the result.

    Returns the SQL counts ('recomputed') with the snapshot's watermark, and whether they were
    installed: not when another rebuild runs (its install will do) or when the marker was lost
    meanwhile (the next cold read tries again).
    """
    counters, group = services.counters, keys.notification_group(user)
    token = counters.begin_rebuild(tenant, group)
    if token is None:
        return replace(sql_only(services, tenant, user), source=RECOMPUTED), False
    installed: bool | None = None
    try:
        with services.db.snapshot() as session:
            counts = sql_counts.notification_counts(session, tenant, user)
            ids = sql_counts.group_outbox_ids(session, tenant, group)
            watermark = watermarks.issued(session, tenant)
        installed = counters.install(tenant, token, install_plan(tenant, user, counts, ids))
    finally:
        if installed is None:
            _abort(services, tenant, group, token)
    if not installed:
        log.info("rebuild marker of %s/%s lost; answered from SQL without installing",
                 tenant, group)
    return CountResult(counts, RECOMPUTED, watermark), installed


def install_plan(tenant: str, user: str, counts: NotificationCounts,
                 snapshot_ids: list[int]) -> Install:
    """Replace the user's hash with `counts`, counting `snapshot_ids` as already included."""
    key = keys.notification_counts_key(tenant, user)
    writes = [Write("del", key), Write("hset", key, tuple(notification_hash_from_counts(counts)))]
    return Install(keys.notification_group(user), writes=writes, snapshot_ids=snapshot_ids)


def sql_only(services: "Services", tenant: str, user: str) -> CountResult:
    """The user's counts straight from SQL ('sql') with the snapshot's watermark, touching no
    counter."""
    with services.db.snapshot() as session:
        return CountResult(sql_counts.notification_counts(session, tenant, user), SQL,
                           watermarks.issued(session, tenant))


def changes_channel(tenant: str, user: str) -> str:
    """The channel on which the outbox announces that the user's counts may have changed."""
    return keys.stream_channel(tenant, user)


def list_page(services: "Services", tenant: str, user: str, limit: int,
              unread: bool | None = None, type_: str | None = None,
              after: tuple[int, str] | None = None) -> Page:
    """A page of the user's live notifications, newest first, starting after `after`."""
    with services.db.snapshot() as session:
        rows = sql_counts.list_notifications(session, tenant, user, limit + 1, unread=unread,
                                             type_=type_, after=after)
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], (int(last.created_at), str(last.id)))


def _abort(services: "Services", tenant: str, group: str, token: str) -> None:
    """Clear our marker after a failed rebuild; if Redis is gone the marker's TTL clears it."""
    try:
        services.counters.abort_rebuild(tenant, group, token)
    except StoreUnavailable as error:
        log.warning("could not clear rebuild marker of %s/%s: %s", tenant, group, error.message)
