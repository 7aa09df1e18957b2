"""The benchmark's one table (Markdown), built from the measurements of each database.

Every load row's ratio is its req/s ÷ the bare Flask app's (bench/bare.py) in the same rounds;
the targets are issue 16's, stated against that app.
"""
from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from typing import Any

from bench.memory import Memory
from bench.recompute import Recompute
from bench.visibility import Visibility
from bench.wrk import Paired

DB_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# Issue 16's targets: least ratios to the bare Flask app, then the write path's bounds.
TARGET_BADGE, TARGET_NOT_MODIFIED, TARGET_TICKET = 0.9, 1.0, 0.5
TARGET_SCALE = 0.95  # the largest tenant's ticket-count ratio ÷ the smallest's
TARGET_VISIBLE_P99_MS = 100
TARGET_WORKER_EVENTS = 3000  # events applied per second by one worker process
TARGET_BYTES_PER_TICKET = 100  # issue 19: Redis bytes per live ticket of the largest tenant
# Issue 19: events/s with 1,000 agents who opened a $me filter ÷ with 10.
ME_AGENTS, TARGET_ME_RATIO = (10, 1000), 0.9


@dataclass(frozen=True)
class LoadRow:
    name: str
    paired: Paired
    target: float | None  # least ratio to the bare Flask app; None for the rulers' rows


@dataclass
class DbResult:
    kind: str
    seeding: str = ""
    loads: list[LoadRow] = field(default_factory=list)
    scale: list[tuple[str, float]] = field(default_factory=list)  # (row, 1M ÷ 1k)
    recompute: Recompute | None = None
    memory: Memory | None = None
    visibility: Visibility | None = None
    visibility_rate: int = 500
    read_your_writes: dict[str, Any] | None = None  # bench/read_your_writes.measure
    worker: dict[str, Any] | str = "pending"
    me_agents: list[tuple[int, dict[str, Any] | str]] = field(default_factory=list)


def _n(value: float, digits: int = 0) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def verdict(q1: float, q3: float, target: float | None) -> str:
    """yes when even the lower quartile of a row's round ratios reaches the target, no when even
    the upper quartile falls short, else unsure: the rounds disagree (machine noise on 2 shared
    cores moves single rounds by up to 2x), so the median alone would decide by luck."""
    if target is None or q1 >= target or q3 < target:
        return _met(None if target is None else q1 >= target)
    return "unsure"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(results: list[DbResult]) -> str:
    lines = [_row(["measurement", "db", "figure", "p50 ms", "p99 ms",
                   "ratio (load rows: ÷ bare Flask app, same rounds; quartiles)", "target",
                   "met"]),
             _row(["---"] * 8)]
    for result in results:
        db = DB_NAMES[result.kind]
        for load in result.loads:
            p = load.paired
            figure = f"{_n(p.rps)} req/s (bare Flask {_n(p.bare_rps)})"
            if p.errors:
                figure += f", {p.errors} errors"
            target = f"≥ {load.target:.2f}" if load.target is not None else "—"
            q1, q3 = p.ratio_quartiles
            lines.append(_row([load.name, db, figure, _n(p.p50_ms, 2), _n(p.p99_ms, 2),
                               f"{p.ratio:.2f} ({q1:.2f}–{q3:.2f})", target,
                               verdict(q1, q3, load.target)]))
        for name, ratio in result.scale:
            lines.append(_row([name, db, "ratio of the ratios to the bare Flask app", "", "",
                               f"{ratio:.2f}", f"≥ {TARGET_SCALE:.2f}",
                               _met(ratio >= TARGET_SCALE)]))
        lines += _memory_rows(result, db) + _recompute_rows(result, db) + _write_rows(result, db)
    return "\n".join(lines)


def _memory_rows(result: DbResult, db: str) -> list[str]:
    m = result.memory
    if m is None:
        return []
    figure = (f"{_n(m.per_ticket)} B ({m.bytes:,} B in {m.keys:,} keys); {m.cells} timed cells "
              f"hold {m.members:,} members ({m.zset_bytes:,} B) and {m.floor:,} folded; "
              f"this trim pass folded {m.folded:,}")
    return [_row([f"Redis bytes per live ticket at {m.tickets:,} tickets (after the warm reads "
                  "and a trim pass)", db, figure, "", "", "",
                  f"≤ {TARGET_BYTES_PER_TICKET} B", _met(m.per_ticket <= TARGET_BYTES_PER_TICKET)])]


def _recompute_rows(result: DbResult, db: str) -> list[str]:
    r = result.recompute
    if r is None:
        return []
    figure = (f"recompute query {_n(r.sql_ms)} ms; COUNT(*) of the tenant {_n(r.scan_ms, 1)} ms"
              f", of the agent's tickets {_n(r.visible_ms, 1)} ms; {r.queries} queries, one "
              f"per number, {_n(r.per_filter_ms)} ms")
    is_pg = result.kind == "postgres"
    met = (f"{_met(r.over_scan <= 2)} (tenant); {_met(r.over_visible <= 2)} (agent's)"
           if is_pg else "—")
    return [_row(["cold recompute, 30 filters, largest tenant", db, figure, "", "",
                  f"{r.over_scan:.1f}× tenant scan; {r.over_visible:.1f}× agent's scan; "
                  f"{r.over_per_filter:.2f}× per-filter",
                  "≤ 2× scan (PostgreSQL)" if is_pg else "—", met]),
            _row(["cold read, 30 filters (query + timed members + install)", db,
                  f"{_n(r.cold_ms)} ms through gunicorn", "", "",
                  f"{r.cold_ms / r.scan_ms:.1f}× scan", "—", "—"])]


def read_your_writes_row(r: dict[str, Any], db: str, rate: int) -> str:
    """bench/read_your_writes: a badge read with its own write's X-Min-Watermark against the
    plain poll, alternating, under `rate` background events/s; p50/p99 are the waiting reads'."""
    waited, plain = sorted(r["waited"]), sorted(r["plain"])

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    served = ", ".join(f"{k} {v:,}" for k, v in sorted(r["sources"].items()))
    figure = (f"p99 added {_n(pct(waited, 99) - pct(plain, 99), 1)} ms over the plain poll "
              f"(p50 {_n(pct(plain, 50), 1)} / p99 {_n(pct(plain, 99), 1)} ms); {r['samples']:,} "
              f"writes at {_n(r['rate'])} events/s; served: {served}; "
              f"{r['wrong']} without their write")
    return _row([f"count waiting for its own write at {rate} events/s", db, figure,
                 _n(pct(waited, 50), 1), _n(pct(waited, 99), 1), "", "every answer has it",
                 _met(r["wrong"] == 0)])


def _write_rows(result: DbResult, db: str) -> list[str]:
    rows = []
    v = result.visibility
    if v is not None:
        figure = (f"{_n(v.rate)} events/s sent; {v.measured:,} measured, {v.missing} missing, "
                  f"{v.refused} refused; POST p99 {_n(v.post_p99_ms, 1)} ms")
        ok = v.missing == 0 and v.refused == 0 and v.p99_ms <= TARGET_VISIBLE_P99_MS
        rows.append(_row([f"event-to-visible at {result.visibility_rate} events/s", db, figure,
                          _n(v.p50_ms, 1), _n(v.p99_ms, 1), "",
                          f"p99 ≤ {TARGET_VISIBLE_P99_MS} ms", _met(ok)]))
    if result.read_your_writes is not None:
        rows.append(read_your_writes_row(result.read_your_writes, db, result.visibility_rate))
    worker = result.worker
    if isinstance(worker, dict):
        figure = (f"{_n(worker['events_per_second'])} events/s "
                  f"({worker['events']:,} events in {worker['seconds']:.1f} s; ingest "
                  f"{_n(worker.get('ingest_events_per_second', float('nan')))} events/s)")
        ok: bool | None = worker["events_per_second"] >= TARGET_WORKER_EVENTS
    else:
        figure, ok = worker, None
    rows.append(_row(["events applied per second, one worker process", db, figure, "", "", "",
                      f"≥ {TARGET_WORKER_EVENTS:,}/s", _met(ok)]))
    if result.me_agents:
        rows.append(_me_agents_row(result.me_agents, db))
    return rows


def _me_agents_row(runs: list[tuple[int, dict[str, Any] | str]], db: str) -> str:
    """Events/s of the worker with many agents who opened a `$me` filter ÷ with few (the last
    run ÷ the first), and the same ratio of events per worker CPU second (steadier)."""
    figures, measured = [], []
    for agents, run in runs:
        if isinstance(run, dict):
            figures.append(f"{agents:,} agents: {_n(run['events_per_second'])} events/s "
                           f"({_n(run['events_per_worker_cpu_second'])} per worker CPU second, "
                           f"{run['materialised_predicates']:,} predicates)")
            measured.append(run)
        else:
            figures.append(f"{agents:,} agents: {run}")
    name = (f"events applied per second, {runs[-1][0]:,} ÷ {runs[0][0]:,} agents who opened a "
            f"$me filter")
    if len(measured) != len(runs) or len(runs) < 2:
        return _row([name, db, "; ".join(figures), "", "", "", f"≥ {TARGET_ME_RATIO:.2f}",
                     _met(None)])
    few, many = measured[0], measured[-1]
    ratio = many["events_per_second"] / few["events_per_second"]
    cpu = many["events_per_worker_cpu_second"] / few["events_per_worker_cpu_second"]
    return _row([name, db, "; ".join(figures), "", "", f"{ratio:.2f} (per CPU second {cpu:.2f})",
                 f"≥ {TARGET_ME_RATIO:.2f}", _met(ratio >= TARGET_ME_RATIO)])


def machine() -> str:
    """One line naming the machine the figures come from."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{model}, {os.cpu_count()} cores{memory}; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}")
