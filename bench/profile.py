"""Where a warm read spends its CPU: cProfile of the hot endpoints in-process (no gunicorn).

    .venv/bin/python -m bench.profile [--calls 500] [--only ticket|notification|baseline]
                                      [--dump DIR]

Seeds a small tenant (SQLite, its own redis-server), warms the counters with one call of each
row of the benchmark, then profiles `--calls` calls through Flask's test client and prints the
functions with the most cumulative and own time. Also prints the mean wall time per call, which
is the in-process cost the gunicorn figures of `make bench` are made of (without the HTTP
server, the socket and the GIL contention of the other threads), and redis-server's own time per
command (INFO commandstats), which the same 2 cores pay.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

from bench import calls
from bench.seed import seed_tenant
from bench.stack import Stack
from bench.wrk import HttpCall
from tally.settings import from_env
from tally.app import create_app
from tally.dev import keys as devkeys
from tally.stores.sql.db import Database

TENANT = "00000000-0000-4000-8000-0000000f11e0"


def _client_call(client, call: HttpCall):  # noqa: ANN001, ANN202
    return client.open(call.path, method=call.method, headers=call.headers,
                       data=call.body.encode() if call.body is not None else None)


def rows(var: str) -> dict[str, list[HttpCall]]:
    users = [f"agent-{n:03d}" for n in range(1, 51)]
    notification = calls.notification_calls(var, TENANT, users)
    ticket = [calls.ticket_call(var, TENANT)]
    return {"notification": notification, "ticket": ticket,
            "profile": [calls.ticket_call(var, TENANT, profile=True)],
            "baseline": calls.baseline_calls(ticket, 3000)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--only", default="notification,ticket,profile,baseline")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--dump", metavar="DIR",
                        help="also write each row's profile to DIR/<row>.prof (for pstats)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, Stack("sqlite", Path(tmp)) as stack:
        db = Database(stack.db_url)
        seed_tenant(db, TENANT, args.tickets, 5000, 100, devkeys.DEV_REALM,
                    lambda line: print(line, file=sys.stderr))
        db.engine.dispose()
        app = create_app(from_env(stack.env()))
        client = app.test_client()
        for name in args.only.split(","):
            todo = rows(str(stack.var_dir))[name]
            for call in todo:  # warm, and check that the row answers from cache
                for _ in range(2):
                    response = _client_call(client, call)
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.data[:300]!r}")
            redis_client = app.extensions["tally"].counters.client
            redis_client.config_resetstat()
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for n in range(args.calls):
                _client_call(client, todo[n % len(todo)])
            profiler.disable()
            mean = (time.perf_counter() - started) / args.calls * 1000
            print(f"\n=== {name}: {args.calls} calls, {mean:.3f} ms per call (profiled) ===")
            stats = pstats.Stats(profiler)
            if args.dump:
                Path(args.dump).mkdir(parents=True, exist_ok=True)
                stats.dump_stats(Path(args.dump) / f"{name}.prof")
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
            started = time.perf_counter()
            for n in range(args.calls):
                _client_call(client, todo[n % len(todo)])
            mean = (time.perf_counter() - started) / args.calls * 1000
            stats = {name: round(float(v["usec_per_call"]), 1)
                     for name, v in redis_client.info("commandstats").items()
                     if v["calls"] >= args.calls}
            print(json.dumps({"row": name, "ms_per_call_unprofiled": round(mean, 3),
                              "redis_usec_per_call": stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
