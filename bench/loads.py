"""The table's load rows: each tally endpoint alternating with the bare Flask app, its ruler.

For each row a bare Flask app (bench/bare.py) is started under tally's own gunicorn settings,
answering as many bytes as the tally response it is compared with, at the path tally's requests
use, so wrk sends both servers the same request bytes. Every round's ratio is tally ÷ bare Flask.
Two more rows share that denominator: the raw WSGI callable (the server's limit: what gunicorn
serves with no framework at all) and tally's in-app /bench/baseline route (a diagnostic: tally's
hooks, logs and metrics without any endpoint's work), neither with a target.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence
from urllib.parse import urlsplit

from bench import calls, report, wrk
from bench.stack import Stack
from bench.wrk import HttpCall, Paired, Side
from tally.dev import baseline

Progress = Callable[[str], None]
RAW_ROW = "raw WSGI callable, same bytes (the server's limit)"
IN_APP_ROW = f"tally's in-app {baseline.PATH}, same bytes (diagnostic)"


def path_of(requests: Sequence[HttpCall]) -> str:
    """The one path (without its query) that `requests` share: the bare app's route."""
    paths = {urlsplit(call.path).path for call in requests}
    if len(paths) != 1:
        raise ValueError(f"a row's requests must share one path, not {sorted(paths)}")
    return paths.pop()


def against_bare(stack: Stack, base: str, requests: Sequence[HttpCall], size: int,
                 load: wrk.Load, workers: int | None = None,
                 threads: int | None = None) -> Paired:
    """`requests` to tally at `base`, alternating with the same requests to a bare Flask app
    answering `size` bytes under the same gunicorn settings (and `workers` × `threads`)."""
    with stack.bare(size, path_of(requests), workers=workers, threads=threads) as bare:
        return wrk.alternate(Side(base, requests), Side(bare, requests), load)


def _logged(name: str, pair: Paired, target: float | None, progress: Progress) -> report.LoadRow:
    progress(f"  {pair.rps:,.0f} req/s, p99 {pair.p99_ms:.1f} ms, {pair.ratio:.2f}× bare Flask "
             f"(rounds: {pair.rounds_text()})")
    return report.LoadRow(name, pair, target)


def measure(stack: Stack, base: str, tenants: dict[str, str], users: list[str],
            args: argparse.Namespace, result: report.DbResult, progress: Progress) -> None:
    """Append every load row and the 1M ÷ 1k scale rows to `result`.

    `tenants` maps each seeded tenant to its size's label, smallest first; the badge is polled
    by `users` of the largest.
    """
    load = wrk.Load(args.rounds, args.seconds, args.connections, args.threads)
    var = str(stack.var_dir)
    small, large = list(tenants)

    def row(name: str, requests: list[HttpCall], size: int, target: float | None) -> None:
        progress(f"load: {name} ({size:,} bytes)")
        pair = against_bare(stack, base, requests, size, load)
        result.loads.append(_logged(name, pair, target, progress))

    badge = calls.notification_calls(var, large, users)
    badge_size = calls.warm(base, badge)
    _rulers(stack, base, badge, badge_size, load, result, progress)
    row("notification count", badge, badge_size, report.TARGET_BADGE)
    conditional = calls.conditional_calls(base, badge)
    row("notification count, 304", conditional, calls.warm(base, conditional, 304),
        report.TARGET_NOT_MODIFIED)
    ratios: dict[bool, list[float]] = {}
    for tenant in (small, large):
        for profile in (False, True):
            call = calls.ticket_call(var, tenant, profile)
            started = time.monotonic()
            size = calls.warm(base, [call])
            progress(f"warmed the {tenants[tenant]}-ticket tenant's cells in "
                     f"{time.monotonic() - started:.1f}s")
            what = "ticket count, within a template profile" if profile else \
                "ticket count, 30 filters, agent of 3 teams, Asia/Calcutta"
            row(f"{what} ({tenants[tenant]} tickets)", [call], size, report.TARGET_TICKET)
            ratios.setdefault(profile, []).append(result.loads[-1].paired.ratio)
    for profile, (small_ratio, large_ratio) in ratios.items():
        name = "ticket count within a profile" if profile else "ticket count"
        result.scale.append((f"{name}: {tenants[large]} ÷ {tenants[small]} tickets",
                             large_ratio / small_ratio))


def _rulers(stack: Stack, base: str, badge: list[HttpCall], size: int, load: wrk.Load,
            result: report.DbResult, progress: Progress) -> None:
    """The raw WSGI callable's and the in-app baseline's rows, against the bare Flask app
    answering the badge's bytes to the badge's requests."""
    path = path_of(badge)
    with stack.bare(size, path) as bare:
        ruler = Side(bare, badge)
        progress(f"load: {IN_APP_ROW} ({size:,} bytes)")
        pair = wrk.alternate(Side(base, calls.baseline_calls(badge, size)), ruler, load)
        result.loads.append(_logged(IN_APP_ROW, pair, None, progress))
        with stack.bare(size, path, raw=True) as raw:
            progress(f"load: {RAW_ROW} ({size:,} bytes)")
            pair = wrk.alternate(Side(raw, badge), ruler, load)
            result.loads.append(_logged(RAW_ROW, pair, None, progress))
