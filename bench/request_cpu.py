"""`python -m bench.request_cpu`: what one whole request costs, server side, under load.

Profiles the whole request, not a view: the web process as the Procfile runs it (the edge,
Caddy, in front of gunicorn; tally, and the bare Flask app and raw WSGI callable of bench/bare.py
under the same settings) is loaded by wrk, and the CPU seconds of every process in its session
(Stack.web_sessions: the launcher, gunicorn's master and workers, Caddy) and of the Stack's own
redis-server are read from /proc before and after, then divided by the requests answered. The
session is listed at the start and at the end of the run and the difference of the two sums is
taken: a process that appears meanwhile is counted from 0, and one that exits is counted through
its parent, which has waited for it (bench/proc.py counts reaped children).

Rows: bare, raw (bench/bare.py), badge (notification count), 304 (its conditional GET), ticket
(the ticket count, 30 filters, an agent of 3 teams) and profile (the ticket count within a
template profile, as bench/run.py makes it); `--rows` picks some. With `--py-spy DIR` the tally
rows are also sampled by py-spy (`pip install py-spy`), one flame-graph-ready file per row.
A small seeded tenant (`--tickets N`, 2,000 by default: warm reads do not depend on its size);
SQLite.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench import calls, wrk
from bench.proc import cpu_seconds, session_cpu
from bench.seed import seed_tenant
from bench.stack import Stack
from tally.dev import keys as devkeys
from tally.stores.sql.db import Database

TENANT = "00000000-0000-4000-8000-000000002000"
ROWS = ("bare", "raw", "badge", "304", "ticket", "profile")
TALLY_ROWS = ("badge", "304", "ticket", "profile")  # the rows py-spy samples


def measure(stack: Stack, base: str, requests: list, seconds: float, server: str,
            spy: Path | None) -> tuple[float, float, float]:
    """req/s, and CPU µs per request of the web process serving `base` (its session: gunicorn
    and the edge) and of the Stack's redis-server."""
    wrk.run(base, requests, 1)  # warm every thread and connection
    session = stack.web_sessions[base]
    assert stack.redis.process is not None  # started by Stack.__enter__
    redis = stack.redis.process.pid
    before, redis_before = session_cpu(session), cpu_seconds(redis)
    sampler = None
    if spy is not None:
        sampler = subprocess.Popen(
            ["py-spy", "record", "--nonblocking", "--subprocesses", "-r", "200", "-f", "raw",
             "-d", str(int(seconds)), "-o", str(spy / f"{server}.txt"), "-p", str(session)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = wrk.run(base, requests, seconds)
    after, redis_used = session_cpu(session), cpu_seconds(redis) - redis_before
    if sampler is not None:
        sampler.wait()
    web = sum(after.values()) - sum(before.values())
    per = 1e6 / max(result.requests, 1)
    return result.rps, web * per, redis_used * per


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.request_cpu",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"of {', '.join(ROWS)}")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk seconds per row")
    parser.add_argument("--tickets", type=int, default=2_000,
                        help="tickets of the seeded tenant")
    parser.add_argument("--py-spy", dest="spy", help="also sample tally rows into this dir")
    args = parser.parse_args(argv)
    rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    spy = Path(args.spy) if args.spy else None
    if spy is not None:
        spy.mkdir(parents=True, exist_ok=True)
    with Stack("sqlite", Path(tempfile.mkdtemp(prefix="tally-cpu-"))) as stack, ExitStack() as up:
        db = Database(stack.db_url)
        seeded = seed_tenant(db, TENANT, args.tickets, 5_000, 400, devkeys.DEV_REALM,
                             lambda _: None)
        db.engine.dispose()
        var = str(stack.var_dir)
        base = up.enter_context(stack.web())
        badge = calls.notification_calls(var, TENANT, list(seeded.notification_users[:200]))
        size = calls.warm(base, badge)
        conditional = calls.conditional_calls(base, badge)
        calls.warm(base, conditional, 304)
        ticket = [calls.ticket_call(var, TENANT)]
        calls.warm(base, ticket)
        profile = [calls.ticket_call(var, TENANT, profile=True)]
        calls.warm(base, profile)
        targets = {"badge": (base, badge), "304": (base, conditional), "ticket": (base, ticket),
                   "profile": (base, profile)}
        if "bare" in rows:
            targets["bare"] = (up.enter_context(stack.bare(size, calls.NOTIFICATION_COUNT)), badge)
        if "raw" in rows:
            targets["raw"] = (up.enter_context(
                stack.bare(size, calls.NOTIFICATION_COUNT, raw=True)), badge)
        print("| row | req/s | web CPU µs per request (gunicorn + edge) "
              "| redis-server CPU µs per request |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            server, requests = targets[row]
            rps, web, redis = measure(stack, server, requests, args.seconds, row,
                                      spy if row in TALLY_ROWS else None)
            print(f"| {row} | {rps:,.0f} | {web:,.0f} | {redis:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
