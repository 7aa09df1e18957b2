"""The ticket count service: filters × visibility plan → cells → one Redis read (or SQL).

Warm: one atomic script sums every count of the request in Redis (a compiled plan,
tally.core.plans, kept per request shape in the app's `plans` cache). Cold (any cell missing):
every cell is computed from one SQL snapshot (so counts and summary agree), and the cold cells
are installed through the rebuild protocol (markers set before the snapshot; snapshot outbox ids
recorded).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from tally.core.clock import epoch_ms
from tally.core.conditions import Definition
from tally.core.model import Principal
from tally.core.plans import CompiledCount, compile_count, sources
from tally.services.rebuild import rebuild_cells
from tally.core.filters import SUMMARY_FILTERS
from tally.core.visibility import scope
from tally.errors import StoreUnavailable
from tally.stores.redis.cells import Sums, WarmSums
from tally.stores.sql import ticket_counts as sql, watermarks
from tally.core.cells import Cell

log = logging.getLogger("tally.services.tickets")


@dataclass(frozen=True)
class TicketCountQuery:
    principal: Principal
    view_type: str
    filters: dict[str, Any]  # requested id -> resolved filter (has .definition), in order
    profile: Definition | None
    timezone: str
    support_only: bool
    profile_id: str | None = None


@dataclass(frozen=True)
class TicketCounts:
    counts: dict[str, int]
    summary: dict[str, int]
    computed_at: int
    source: str
    details_json: str  # `filterDetails`, serialised
    watermark: int = 0  # every write of the tenant up to it is in these counts


class TicketCountService:
    """Answers POST /ticket/count; holds nothing per request."""

    def __init__(self, services: Any):
        self.services = services

    def compiled(self, query: TicketCountQuery) -> CompiledCount:
        """The request's plan: compiled once per shape (the caller, its view, the filter ids
        and profile), reused while the catalog hands out the definitions it was compiled from."""
        principal = query.principal
        key = (principal, query.view_type, query.support_only, tuple(query.filters),
               query.profile_id)
        made_of = sources(query.filters, query.profile)
        plans = self.services.caches.plans
        compiled = plans.get(key, made_of)
        if compiled is None:
            view = scope(principal, query.view_type, query.support_only)
            compiled = plans.put(key, compile_count(
                principal, view, query.filters, query.profile, query.profile_id,
                functools.partial(Sums.of, principal.tenant_id)), made_of)
        return compiled

    def warm(self, query: TicketCountQuery) -> TicketCounts | None:
        """The answer when every cell is warm (one Redis script), else None (count() computes
        the cold cells). Raises StoreUnavailable when Redis cannot be reached."""
        now = epoch_ms(self.services.clock())
        compiled = self.compiled(query)
        read = self._read(compiled, now, query.timezone)
        if not isinstance(read, WarmSums):
            return None
        return self._answer(compiled, compiled.per_target(read.sums), now, "cache",
                            read.watermark)

    def count(self, query: TicketCountQuery) -> TicketCounts:
        now = epoch_ms(self.services.clock())
        compiled = self.compiled(query)
        tenant = query.principal.tenant_id
        try:
            read = self._read(compiled, now, query.timezone)
        except StoreUnavailable as error:
            log.warning("ticket counts from SQL, counter store down: %s", error.message)
            return self.sql(query)
        if isinstance(read, WarmSums):
            return self._answer(compiled, compiled.per_target(read.sums), now, "cache",
                                read.watermark)
        spans = compiled.windows(now, query.timezone)  # per target: the cold paths need them
        cold = list({cell.id: cell for cell in read}.values())
        values, watermark = self._recompute(tenant, cold, compiled, spans, now)
        return self._answer(compiled, compiled.totals(values), now, "recomputed", watermark)

    def sql(self, query: TicketCountQuery) -> TicketCounts:
        """The answer straight from SQL (X-Count-Source: sql), touching no counter: the counter
        store is down, or a request waited for a watermark longer than it may."""
        now = epoch_ms(self.services.clock())
        compiled = self.compiled(query)
        spans = compiled.windows(now, query.timezone)
        values, watermark = self._from_sql(query.principal.tenant_id, compiled, spans)
        return self._answer(compiled, compiled.totals(values), now, "sql", watermark)

    def _read(self, compiled: CompiledCount, now: int, timezone: str) -> WarmSums | list[Any]:
        """One script's sums per (MP, window), or the cold cells when any is missing."""
        return self.services.ticket_counters.read_sums(
            compiled.sums, compiled.entry_windows(now, timezone), now)

    def _from_sql(self, tenant: str, compiled: CompiledCount,
                  spans: list[tuple[float, float] | None]) -> tuple[list[int], int]:
        """The cells' values and the tenant's watermark, from one snapshot."""
        with self.services.db.snapshot() as session:
            return (sql.cell_counts(session, tenant, compiled.cells,
                                    compiled.cell_windows(spans)),
                    watermarks.issued(session, tenant))

    def _recompute(self, tenant: str, cold: list[Cell], compiled: CompiledCount,
                   spans: list[tuple[float, float] | None], now: int) -> tuple[list[int], int]:
        try:
            return rebuild_cells(self.services, tenant, cold, now, compiled.cells,
                                 compiled.cell_windows(spans))
        except StoreUnavailable as error:
            log.warning("ticket counts from SQL, install failed: %s", error.message)
            return self._from_sql(tenant, compiled, spans)

    @staticmethod
    def _answer(compiled: CompiledCount, totals: list[int], now: int, source: str,
                watermark: int) -> TicketCounts:
        per_target = dict(zip((t.key for t in compiled.targets), totals))
        counts = {fid: per_target[fid] for fid in compiled.filter_ids}
        summary = {key: per_target[f"summary:{key}"] for key in SUMMARY_FILTERS}
        return TicketCounts(counts, summary, now, source, compiled.details_json, watermark)
