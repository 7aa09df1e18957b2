"""The ticket count service: filters × visibility plan → cells → one Redis read (or SQL).

Warm: every cell of the request is read by one atomic script. Cold (any cell missing): every cell
is computed from one SQL snapshot (so counts and summary agree), and the cold cells are installed
through the rebuild protocol (markers set before the snapshot; snapshot outbox ids recorded).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from tally.clock import epoch_ms
from tally.counting.conditions import Definition
from tally.counting.model import Principal
from tally.counting.predicates import Materialized
from tally.counting.ticket_rebuild import rebuild_cells
from tally.counting.system_filters import SUMMARY_FILTERS
from tally.counting.visibility import CountPlan, plan
from tally.errors import StoreUnavailable
from tally.stores import sql_ticket_counts as sql
from tally.stores.ticket_counters import Cell

log = logging.getLogger("tally.counting.tickets")


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
class Target:
    """One number of the answer: a requested filter or a summary entry."""

    key: str
    mp: Materialized
    definition: Definition


@dataclass(frozen=True)
class TicketCounts:
    counts: dict[str, int]
    summary: dict[str, int]
    computed_at: int
    source: str


def _targets(query: TicketCountQuery) -> list[Target]:
    named = [(fid, fid, f.definition) for fid, f in query.filters.items()]
    named += [(f"summary:{key}", spec.id, spec.definition)
              for key, spec in SUMMARY_FILTERS.items()]
    profile = (query.profile_id,) if query.profile_id else ()
    return [Target(key, Materialized.of(d, query.principal, query.profile, (fid, *profile)), d)
            for key, fid, d in named]


def _windows(targets: Sequence[Target], now: int, tz: str) -> dict[str, tuple[float, float] | None]:
    """Per target, its window now in `tz` (None for plain MPs)."""
    return {t.key: (t.definition.time_condition.window(now, tz)
                    if t.definition.time_condition else None) for t in targets}


class TicketCountService:
    """Answers POST /ticket/count; holds nothing per request."""

    def __init__(self, services: Any):
        self.services = services

    def count(self, query: TicketCountQuery) -> TicketCounts:
        now = epoch_ms(self.services.clock())
        view = plan(query.principal, query.view_type, query.support_only)
        targets = _targets(query)
        spans = _windows(targets, now, query.timezone)
        # A timed MP may be asked with different windows (e.g. Overdue and Due Today share one),
        # so the unit read is (target, bucket), not the cell alone.
        reads = [(t, Cell(t.mp, b)) for t in targets for b in view.buckets]
        tenant = query.principal.tenant_id
        try:
            values = self.services.ticket_counters.read(
                tenant, [cell for _, cell in reads], [spans[t.key] for t, _ in reads])
        except StoreUnavailable as error:
            log.warning("ticket counts from SQL, counter store down: %s", error.message)
            values = self._from_sql(tenant, reads, spans)
            return self._answer(query, targets, view, reads, values, now, "sql")
        cold = {cell.group: cell for (_, cell), v in zip(reads, values) if v is None}
        if cold:
            values = self._recompute(tenant, list(cold.values()), reads, spans, now)
            return self._answer(query, targets, view, reads, values, now, "recomputed")
        return self._answer(query, targets, view, reads, values, now, "cache")

    def _from_sql(self, tenant: str, reads: list[tuple[Target, Cell]],
                  spans: dict[str, Any]) -> list[int]:
        with self.services.db.snapshot() as session:
            return sql.cell_counts(session, tenant, [c for _, c in reads],
                                   [spans[t.key] for t, _ in reads])

    def _recompute(self, tenant: str, cold: list[Cell], reads: list[tuple[Target, Cell]],
                   spans: dict[str, Any], now: int) -> list[int]:
        try:
            return rebuild_cells(self.services, tenant, cold, now,
                                 [c for _, c in reads], [spans[t.key] for t, _ in reads])
        except StoreUnavailable as error:
            log.warning("ticket counts from SQL, install failed: %s", error.message)
            return self._from_sql(tenant, reads, spans)

    @staticmethod
    def _answer(query: TicketCountQuery, targets: list[Target], view: CountPlan,
                reads: list[tuple[Target, Cell]], values: list[int], now: int,
                source: str) -> TicketCounts:
        per_target: dict[str, dict[str, int]] = {}
        for (target, cell), value in zip(reads, values):
            per_target.setdefault(target.key, {})[cell.bucket] = value or 0
        totals = {key: view.evaluate(buckets) for key, buckets in per_target.items()}
        counts = {fid: totals[fid] for fid in query.filters}
        summary = {key: totals[f"summary:{key}"] for key in SUMMARY_FILTERS}
        return TicketCounts(counts, summary, now, source)
