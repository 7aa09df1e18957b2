"""Read-your-writes: the applied watermark the worker raises, and what a count may claim.

After an apply marks its rows in SQL, `advance` computes in one statement the highest watermark
W whose every outbox row is applied (stores/sql/watermarks.applied) and raises the tenant's
Redis key to it (never lowering it) and publishes it. Every warm counter of the tenant then
reflects every write up to W: a row at or below W was applied to each warm group it touches,
or its group was cold and is rebuilt from SQL, which holds it. A flushed Redis loses the key,
so warm reads claim 0 (nothing) until the next apply: an understatement, never an overstatement.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tally.errors import StoreUnavailable
from tally.stores import keys
from tally.stores.sql import watermarks as sql

if TYPE_CHECKING:
    from tally.services.container import Services

log = logging.getLogger("tally.services.watermarks")


def advance(services: "Services", tenant: str) -> int | None:
    """Raise the tenant's applied watermark to what SQL says is applied and tell the requests
    waiting for it; returns the stored value, or None when Redis could not be reached (the
    next apply raises it; meanwhile reads claim less than they reflect, never more)."""
    with services.db.snapshot() as session:
        applied = sql.applied(session, tenant)
    try:
        return services.counters.advance_watermark(tenant, applied)
    except StoreUnavailable as error:
        log.warning("tenant %s: applied watermark not raised: %s", tenant, error.message)
        return None


def applied(services: "Services", tenant: str) -> int:
    """The tenant's applied watermark in Redis (0 when none is stored). Raises
    StoreUnavailable when Redis cannot be reached."""
    return services.counters.applied_watermark(tenant)


def issued(services: "Services", tenant: str) -> int:
    """The last watermark issued to the tenant (SQL)."""
    with services.db.snapshot() as session:
        return sql.issued(session, tenant)


def channel(tenant: str) -> str:
    """The pub/sub channel on which `advance` announces a rise (requests wait on it)."""
    return keys.watermark_channel(tenant)
