"""`python -m bench.slow_clients [--direct]`: badge polls while slow clients hold connections.

Issue 17's attack, measured: N clients that send a header line every `--interval` seconds and M
that send a `POST /events` body a byte at a time, all on loopback, while one client polls the
badge (`--polls` polls, one after the other, each given up after 10 s). Served as the Procfile
does (the edge in front of gunicorn), or with `--direct` by gunicorn alone (how tally served
before). Prints one JSON line: polls answered, timed out, median and slowest seconds. Every
connection closes when the polls end (after `--limit` seconds at most).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.calls import notification_calls, warm
from bench.seed import seed_tenant
from bench.stack import Stack
from tally.dev import keys as devkeys
from tally.stores.sql.db import Database
from tests.support.slow_clients import SlowClients

TENANT = "00000000-0000-4000-8000-000000017017"
POLL_TIMEOUT = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients")
    parser.add_argument("--direct", action="store_true", help="gunicorn alone, no edge")
    parser.add_argument("--headers", type=int, default=1000, help="slow-header connections")
    parser.add_argument("--bodies", type=int, default=200, help="slow-body connections")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between sends")
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--limit", type=float, default=240.0, help="longest run, seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-slow-") as workdir, \
            Stack("sqlite", Path(workdir)) as stack:
        db = Database(stack.db_url)
        seeded = seed_tenant(db, TENANT, 100, 20, 1, devkeys.DEV_REALM, lambda line: None)
        db.engine.dispose()
        call = notification_calls(str(stack.var_dir), TENANT, seeded.notification_users)[0]
        with stack.web(direct=args.direct) as base:
            warm(base, [call])
            port = int(base.rsplit(":", 1)[1])
            with SlowClients(port, args.headers, args.bodies, args.interval, args.limit) as slow:
                time.sleep(args.interval * 2)  # every slow client has sent more than its head
                seconds, timeouts = [], 0
                for _ in range(args.polls):
                    started = time.monotonic()
                    request = urllib.request.Request(base + call.path, headers=call.headers)
                    try:
                        with urllib.request.urlopen(request, timeout=POLL_TIMEOUT) as response:
                            response.read()
                        seconds.append(time.monotonic() - started)
                    except (urllib.error.URLError, TimeoutError, OSError):
                        timeouts += 1
                held = slow.still_open()
    print(json.dumps({"serving": "gunicorn alone" if args.direct else "edge + gunicorn",
                      "slow_headers": args.headers, "slow_bodies": args.bodies,
                      "still_open": held, "polls": args.polls, "answered": len(seconds),
                      "timed_out": timeouts,
                      "median_s": round(statistics.median(seconds), 4) if seconds else None,
                      "slowest_s": round(max(seconds), 4) if seconds else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
