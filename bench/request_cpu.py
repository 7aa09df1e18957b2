"""`python -m bench.request_cpu`: what one whole request costs, server side, under load.

Profiles the whole request, not a view: gunicorn as the Procfile runs it (tally, and the bare
Flask app and raw WSGI callable of bench/bare.py under the same settings) is loaded by wrk, and
the CPU seconds of every gunicorn process and of redis-server are read from /proc before and
after, then divided by the requests answered. With `--py-spy DIR` the tally rows are also
sampled by py-spy (`pip install py-spy`), one flame-graph-ready file per row. Small seeded
tenant (warm reads do not depend on its size); SQLite.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench import calls, wrk
from bench.seed import seed_tenant
from bench.stack import Stack
from tally.dev import keys as devkeys
from tally.stores.sql.db import Database

TENANT = "00000000-0000-4000-8000-000000002000"
ROWS = ("bare", "raw", "badge", "304", "ticket")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split() if int(pid) != os.getpid()]


def measure(base: str, requests: list, seconds: float, server: str,
            spy: Path | None) -> tuple[float, float, float]:
    """req/s, and CPU µs per request of the gunicorn serving `server` and of redis-server."""
    wrk.run(base, requests, 1)  # warm every thread and connection
    port = base.rsplit(":", 1)[1]
    web, redis = pids(f"gunicorn.*127.0.0.1:{port}"), pids("redis-server")
    before = {pid: cpu_seconds(pid) for pid in web + redis}
    sampler = None
    if spy is not None:
        sampler = subprocess.Popen(
            ["py-spy", "record", "--nonblocking", "--subprocesses", "-r", "200", "-f", "raw",
             "-d", str(int(seconds)), "-o", str(spy / f"{server}.txt"), "-p", str(min(web))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = wrk.run(base, requests, seconds)
    used = {pid: cpu_seconds(pid) - before[pid] for pid in before}
    if sampler is not None:
        sampler.wait()
    per = 1e6 / max(result.requests, 1)
    return (result.rps, sum(used[pid] for pid in web) * per,
            sum(used[pid] for pid in redis) * per)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.request_cpu",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"of {', '.join(ROWS)}")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk seconds per row")
    parser.add_argument("--py-spy", dest="spy", help="also sample tally rows into this dir")
    args = parser.parse_args(argv)
    rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    spy = Path(args.spy) if args.spy else None
    if spy is not None:
        spy.mkdir(parents=True, exist_ok=True)
    with Stack("sqlite", Path(tempfile.mkdtemp(prefix="tally-cpu-"))) as stack, ExitStack() as up:
        db = Database(stack.db_url)
        seeded = seed_tenant(db, TENANT, 2_000, 5_000, 400, devkeys.DEV_REALM, lambda _: None)
        db.engine.dispose()
        var = str(stack.var_dir)
        base = up.enter_context(stack.web())
        badge = calls.notification_calls(var, TENANT, list(seeded.notification_users[:200]))
        size = calls.warm(base, badge)
        conditional = calls.conditional_calls(base, badge)
        calls.warm(base, conditional, 304)
        ticket = [calls.ticket_call(var, TENANT)]
        calls.warm(base, ticket)
        targets = {"badge": (base, badge), "304": (base, conditional), "ticket": (base, ticket)}
        if "bare" in rows:
            targets["bare"] = (up.enter_context(stack.bare(size, calls.NOTIFICATION_COUNT)), badge)
        if "raw" in rows:
            targets["raw"] = (up.enter_context(
                stack.bare(size, calls.NOTIFICATION_COUNT, raw=True)), badge)
        print("| row | req/s | gunicorn CPU µs per request | redis-server CPU µs per request |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            server, requests = targets[row]
            rps, web, redis = measure(server, requests, args.seconds, row,
                                      spy if row in ("badge", "304", "ticket") else None)
            print(f"| {row} | {rps:,.0f} | {web:,.0f} | {redis:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
