"""`python -m bench.run --grid 2x4,4x4,…`: gunicorn's worker and thread counts, measured.

For each WEB_CONCURRENCY × GUNICORN_THREADS pair, gunicorn is restarted with those variables
(config/gunicorn.conf.py unchanged) and the badge and the 30-filter ticket count are loaded with
wrk, alternating as in the main table with the bare Flask app answering the same bytes, served
with the same pair. One table: req/s, p99 and the ratio to the bare Flask app per pair.
"""
from __future__ import annotations

from typing import Callable

from bench import calls, loads, wrk
from bench.stack import Stack


def parse(text: str) -> list[tuple[int, int]]:
    """"2x4,4x1" → [(2, 4), (4, 1)]."""
    pairs = []
    for item in text.split(","):
        workers, _, threads = item.strip().lower().partition("x")
        if not workers.isdigit() or not threads.isdigit():
            raise SystemExit(f"--grid takes WORKERSxTHREADS pairs like 2x4,4x4, not {item!r}")
        pairs.append((int(workers), int(threads)))
    return pairs


def measure(stack: Stack, pairs: list[tuple[int, int]], tenant: str, users: list[str],
            load: wrk.Load, progress: Callable[[str], None]) -> str:
    var = str(stack.var_dir)
    badge = calls.notification_calls(var, tenant, users)
    ticket = [calls.ticket_call(var, tenant)]
    lines = ["| workers × threads | badge req/s | badge p99 ms | badge ÷ bare Flask "
             "| ticket count req/s | ticket p99 ms | ticket ÷ bare Flask |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for workers, threads in pairs:
        progress(f"grid: {workers} workers × {threads} threads")
        with stack.web(workers, threads) as base:
            cells = [f"{workers} × {threads}"]
            for endpoint in (badge, ticket):
                size = calls.warm(base, endpoint)
                pair = loads.against_bare(stack, base, endpoint, size, load, workers, threads)
                cells += [f"{pair.rps:,.0f}", f"{pair.p99_ms:,.1f}", f"{pair.ratio:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
        progress(lines[-1])
    return "\n".join(lines)
