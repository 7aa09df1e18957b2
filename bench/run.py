"""`python -m bench.run` (what `make bench` runs): seed, serve, load, and print one table.

For each database (SQLite, PostgreSQL): seed a 1,000-ticket and a 1,000,000-ticket tenant, the
latter with 100,000 notifications; serve them with gunicorn as the Procfile does; drive it with
wrk from its own process, each endpoint alternating in short rounds with a bare Flask app
(bench/bare.py) answering the same bytes under the same gunicorn settings, the denominator of
every ratio (bench/loads.py); time the cold 30-filter recompute; measure event-to-visible
latency at a steady event rate with a real worker, and what waiting for one's own write adds to a
count at that rate (bench/read_your_writes.py); and run bench/worker_throughput.py for events
applied per second, and again with 10 and with 1,000 agents who opened a `$me` filter
(`--me-agents`) for the ratio of the two. After the warm reads, a trim pass and the largest
tenant's Redis bytes per live ticket (bench/memory.py).
Progress goes to stderr, the table to stdout (and to --output as Markdown).
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import (calls, grid, loads, memory, read_your_writes, recompute, report, visibility,
                   wrk)
from bench.seed import SeededTenant, seed_tenant
from bench.stack import ROOT, Stack
from tally.settings import from_env
from tally.dev import keys as devkeys
from tally.app import create_app
from tally.stores.sql.db import Database

SMALL_TENANT = "00000000-0000-4000-8000-000000001000"
LARGE_TENANT = "00000000-0000-4000-8000-000001000000"


QUICK = {"tickets": 20_000, "notifications": 5_000, "users": 400, "rounds": 2, "seconds": 2.0,
         "event_seconds": 8.0, "recompute_repeats": 2}


def progress(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    add("--tickets", type=int, default=1_000_000, help="tickets of the large tenant")
    add("--small-tickets", type=int, default=1_000, help="tickets of the small tenant")
    add("--notifications", type=int, default=100_000, help="notifications of the large tenant")
    add("--users", type=int, default=2_000, help="users holding those notifications")
    add("--badge-users", type=int, default=200, help="users whose tokens poll the badge")
    add("--rounds", type=int, default=8, help="endpoint/bare Flask round pairs per row")
    add("--seconds", type=float, default=2.0, help="seconds per wrk round")
    add("--connections", type=int, default=wrk.CONNECTIONS, help="wrk connections")
    add("--threads", type=int, default=wrk.THREADS, help="wrk threads")
    add("--event-rate", type=int, default=500, help="events/s for event-to-visible")
    add("--event-seconds", type=float, default=30.0, help="seconds of steady events")
    add("--event-batch", type=int, default=10, help="events per POST /events")
    add("--ticket-share", type=float, default=0.2, help="share of ticket.upserted events")
    add("--recompute-repeats", type=int, default=5)
    add("--quick", action="store_true",
        help="small sizes and short rounds, to check the harness (not for the table)")
    add("--skip-worker", action="store_true", help="skip bench/worker_throughput.py")
    add("--me-agents", type=lambda text: [int(n) for n in text.split(",")],
        default=list(report.ME_AGENTS), metavar="FEW,MANY",
        help="agents who opened a $me filter in the two worker runs compared (default 10,1000)")
    add("--output", help="also write the table and its context to this Markdown file")
    add("--workdir", help="keep databases and logs here (default: a temp dir)")
    add("--grid", help="instead of the table: WORKERSxTHREADS pairs to compare, e.g. 2x4,4x4 "
                       "(first --db only)")
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; options given explicitly still win
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def gunicorn_settings(env: dict[str, str]) -> dict[str, object]:
    """What config/gunicorn.conf.py resolves to under `env` (workers, threads, class)."""
    saved = dict(os.environ)
    try:
        with tempfile.TemporaryDirectory(prefix="tally-bench-metrics-") as metrics:
            os.environ.update(env, PROMETHEUS_MULTIPROC_DIR=metrics)  # else it makes its own
            conf = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    names = ("workers", "threads", "poll_threads", "worker_class", "accesslog")
    return {name: conf.get(name) for name in names}


def worker_throughput(kind: str, quick: bool, me_agents: int = 0) -> dict | str:
    script = ROOT / "bench" / "worker_throughput.py"
    if not script.exists():
        return "pending"
    command = [sys.executable, "-m", "bench.worker_throughput", "--json", "--db", kind]
    if quick:
        command += ["--events", "2000"]
    if me_agents:
        command += ["--me-agents", str(me_agents)]
    progress(f"worker throughput: {' '.join(command[1:])}")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return f"failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return json.loads(lines[-1])


def seed(stack: Stack, args: argparse.Namespace) -> tuple[SeededTenant, SeededTenant]:
    db = Database(stack.db_url)
    small = seed_tenant(db, SMALL_TENANT, args.small_tickets, 0, 1, devkeys.DEV_REALM, progress)
    large = seed_tenant(db, LARGE_TENANT, args.tickets, args.notifications, args.users,
                        devkeys.DEV_REALM, progress)
    db.engine.dispose()
    os.sync()  # the seeded rows' dirty pages are written back now, not during the first rows
    return small, large


def run_grid(kind: str, args: argparse.Namespace, workdir: Path) -> str:
    with Stack(kind, workdir) as stack:
        _small, large = seed(stack, args)
        load = wrk.Load(args.rounds, args.seconds, args.connections, args.threads)
        return grid.measure(stack, grid.parse(args.grid), LARGE_TENANT,
                            list(large.notification_users[:args.badge_users]), load, progress)


def bench_db(kind: str, args: argparse.Namespace, workdir: Path) -> report.DbResult:
    result = report.DbResult(kind, visibility_rate=args.event_rate)
    with Stack(kind, workdir) as stack:
        small, large = seed(stack, args)
        result.seeding = (f"{small.tickets + large.tickets:,} tickets and "
                          f"{large.notifications:,} notifications seeded in "
                          f"{small.seconds + large.seconds:.0f} s")
        var = str(stack.var_dir)
        with stack.web() as base:
            users = list(large.notification_users)
            tenants = {SMALL_TENANT: f"{args.small_tickets:,}", LARGE_TENANT: f"{args.tickets:,}"}
            loads.measure(stack, base, tenants, users[:args.badge_users], args, result, progress)
            app = create_app(from_env(stack.env()))
            progress("memory per live ticket (after a trim pass)")
            result.memory = memory.measure(app.extensions["tally"], LARGE_TENANT)
            progress("cold recompute")
            result.recompute = recompute.measure(app.extensions["tally"], base,
                                                 calls.ticket_call(var, LARGE_TENANT),
                                                 LARGE_TENANT, args.recompute_repeats)
            app.extensions["tally"].db.engine.dispose()
            progress(f"event-to-visible at {args.event_rate} events/s")
            with stack.worker():
                result.visibility = visibility.measure(
                    stack.redis.url, base, LARGE_TENANT, users[:args.badge_users],
                    calls.service_headers(var, LARGE_TENANT), args.tickets, args.event_rate,
                    args.event_batch, args.event_seconds, args.ticket_share)
                progress(f"counts waiting for their own writes at {args.event_rate} events/s")
                result.read_your_writes = read_your_writes.measure(
                    base, var, LARGE_TENANT, users[:args.badge_users], args.tickets,
                    args.event_rate, args.event_batch, min(args.event_seconds, 15.0),
                    args.ticket_share)
    if not args.skip_worker:
        result.worker = worker_throughput(kind, args.quick)
        result.me_agents = [(n, worker_throughput(kind, args.quick, n)) for n in args.me_agents]
    return result


def context(args: argparse.Namespace) -> str:
    settings = gunicorn_settings({})
    return (f"Machine: {report.machine()}.\n"
            f"gunicorn (config/gunicorn.conf.py): {settings['workers']} workers × "
            f"{settings.get('poll_threads') or settings['threads']} request threads "
            f"({settings['threads']} in all, {settings['worker_class']}); "
            f"wrk: {args.threads} threads, {args.connections} connections, "
            f"{args.rounds} rounds of {args.seconds:g} s per row and per bare Flask app.\n"
            f"Denominator of every load row: a bare Flask app (bench/bare.py: one route, no "
            f"hooks, the same response bytes) under the same gunicorn settings, sent the same "
            f"requests in alternating rounds.\n"
            f"Sizes: {args.small_tickets:,} and {args.tickets:,} tickets, "
            f"{args.notifications:,} notifications over {args.users:,} users"
            f"{' (--quick: not the issue sizes)' if args.quick else ''}.")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wrk.wrk_binary()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tally-bench-"))
    progress(f"working in {root}")
    kinds = [k.strip() for k in args.db.split(",") if k.strip()]
    for kind in kinds:
        if kind not in report.DB_NAMES:
            raise SystemExit(f"unknown --db {kind!r}: use sqlite and/or postgres")
    if args.grid:
        text = context(args) + "\n\n" + run_grid(kinds[0], args, root / kinds[0])
    else:
        results = []
        for kind in kinds:
            progress(f"== {report.DB_NAMES[kind]}")
            results.append(bench_db(kind, args, root / kind))
            progress(results[-1].seeding)
        text = context(args) + "\n" + "\n".join(
            f"{report.DB_NAMES[r.kind]}: {r.seeding}." for r in results) + "\n\n" + \
            report.table(results)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    if not args.workdir:  # databases of a million rows: keep them only when asked (--workdir)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
