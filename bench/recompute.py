"""Cold recompute of the 30-filter sidebar, against one COUNT(*) scan and one query per filter.

- cold: drop the tenant's ticket counters, then time one POST /ticket/count through gunicorn
  (it must answer `X-Count-Source: recomputed`): the SQL snapshot, the members of timed cells
  and the install, as a client waits for them;
- recompute query: the one conditional-aggregate query that gives every number of that answer
  (stores/sql_ticket_counts.cell_counts over the same cells), alone;
- scans: `SELECT count(*)` of the tenant's live tickets (the cheapest pass over them: on
  PostgreSQL an index-only scan that never reads a row) and of the live tickets the agent sees,
  written as one OR (on PostgreSQL a bitmap scan that fetches the rows from the heap, as the
  recompute must: it reads the same rows as disjoint branches over the scope indexes of
  migration 0002 and tests the filters on each);
- per filter: every number of that answer (30 filters and 5 summary entries) as its own
  `SELECT count(*) … WHERE visibility AND filter [AND window]`, one after the other.
Each is repeated and the median kept (the first run of each only warms caches).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import func, or_, select

from bench.calls import AGENT, AGENT_TEAMS, TIMEZONE, send
from bench.seed import SHARED_FILTERS
from bench.wrk import HttpCall
from tally.core.clock import epoch_ms, utc_now
from tally.services import ticket_maintenance
from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.core.filters import SUMMARY_FILTERS, SYSTEM_BY_ID
from tally.dev.launcher import EXAMPLE_FILTERS
from tally.stores.sql import ticket_counts as sql
from tally.stores.sql.models import Ticket
from tally.stores.sql.conditions import predicate, window


@dataclass(frozen=True)
class Recompute:
    cold_ms: float  # the whole cold read: snapshot, members of timed cells, install
    sql_ms: float  # its one conditional-aggregate query alone
    scan_ms: float  # COUNT(*) of the tenant's live tickets (an index-only scan on PostgreSQL)
    visible_ms: float  # COUNT(*) of the live tickets the agent sees (one OR: a bitmap scan)
    per_filter_ms: float
    queries: int

    @property
    def over_scan(self) -> float:
        return self.sql_ms / self.scan_ms

    @property
    def over_visible(self) -> float:
        return self.sql_ms / self.visible_ms

    @property
    def over_per_filter(self) -> float:
        return self.sql_ms / self.per_filter_ms


def answer_cells(services: Any, tenant: str) -> tuple[list[Any], list[Any]]:
    """The cells (and windows) one cold read of the agent's sidebar counts, as
    TicketCountService.count builds them: 35 targets, each over the agent's 7 buckets or the
    fewer its caller conjuncts narrow them to."""
    from tally.services.tickets import TicketCountQuery, TicketCountService

    agent = Principal(AGENT, tenant, "bench", frozenset({"ticket_agent"}), AGENT_TEAMS)
    found, invalid = services.filter_catalog.resolve(services, tenant, AGENT,
                                                     list(EXAMPLE_FILTERS))
    if invalid:
        raise RuntimeError(f"filters missing from the seeded tenant: {invalid}")
    query = TicketCountQuery(agent, "agent", {fid: found[fid] for fid in EXAMPLE_FILTERS}, None,
                             TIMEZONE, False)
    compiled = TicketCountService(services).compiled(query)
    spans = compiled.windows(epoch_ms(utc_now()), TIMEZONE)
    return compiled.cells, compiled.cell_windows(spans)


def _median_ms(action: Callable[[], Any], repeats: int) -> float:
    action()  # warm caches (and, for the cold read, the filter catalog and pools)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _live(tenant: str) -> list[Any]:
    return [Ticket.tenant_id == tenant, Ticket.deleted.is_(False)]


def per_filter_queries(tenant: str, dialect: str, now: int) -> list[Any]:
    """One COUNT query per number of the answer, within the agent's visibility."""
    specs = {**SYSTEM_BY_ID, **{spec.id: spec for spec in SHARED_FILTERS}}
    definitions = [specs[fid].definition for fid in EXAMPLE_FILTERS]
    definitions += [spec.definition for spec in SUMMARY_FILTERS.values()]
    agent = Principal(AGENT, tenant, "bench", frozenset({"ticket_agent"}), AGENT_TEAMS)
    visible = or_(Ticket.team_id.in_(AGENT_TEAMS), Ticket.assignee_id == AGENT)
    queries = []
    for definition in definitions:
        mp = Materialized.of(definition, agent)
        parts = [*_live(tenant), visible, predicate(mp.root, dialect)]
        if definition.time_condition is not None:
            lo, hi = definition.time_condition.window(now, TIMEZONE)
            parts.append(window(mp.score_field, None if lo == float("-inf") else int(lo),
                                int(hi)))
        queries.append(select(func.count()).select_from(Ticket).where(*parts))
    return queries


def measure(services: Any, base_url: str, call: HttpCall, tenant: str,
            repeats: int) -> Recompute:
    """The three timings for `tenant` (the agent's 30-filter call is `call`)."""
    def cold() -> None:
        ticket_maintenance.invalidate(services, tenant, None, None)
        answer = send(base_url, call)
        if answer.status != 200 or answer.source != "recomputed":
            raise RuntimeError(f"cold read answered {answer.status} from {answer.source}")

    engine = services.db.engine
    scan = select(func.count()).select_from(Ticket).where(*_live(tenant))
    queries = per_filter_queries(tenant, engine.dialect.name, epoch_ms(utc_now()))

    cells, windows = answer_cells(services, tenant)

    def run_sql() -> None:
        with services.db.snapshot() as session:
            sql.cell_counts(session, tenant, cells, windows)

    visible = select(func.count()).select_from(Ticket).where(
        *_live(tenant), or_(Ticket.team_id.in_(AGENT_TEAMS), Ticket.assignee_id == AGENT))

    def run_scan(query: Any = scan) -> None:
        with engine.connect() as conn:
            conn.execute(query).scalar_one()

    def run_per_filter() -> None:
        with engine.connect() as conn:
            for query in queries:
                conn.execute(query).scalar_one()

    cold_ms = _median_ms(cold, repeats)
    send(base_url, call)  # leave the counters warm
    return Recompute(cold_ms, _median_ms(run_sql, repeats), _median_ms(run_scan, repeats),
                     _median_ms(lambda: run_scan(visible), repeats),
                     _median_ms(run_per_filter, repeats), len(queries))
