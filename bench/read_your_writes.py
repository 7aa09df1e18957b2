"""`python -m bench.read_your_writes`: what waiting for one's own write adds to a count.

The ticket UI's situation (issue 21): the ticket service posts an event, gets its watermark, and
the UI refreshes the badge at once with `X-Min-Watermark`. Under a steady background of events
(bench/producer.py at --rate events/s, in its own process) against the web process as the
Procfile runs it and a real worker, a writer posts one `notification.created` for its own user
and at once reads that user's badge with the watermark; alternately it reads the badge without
one (the plain poll). The row gives the p50/p99 of both, the p99 the wait adds, how the waiting
answers were served (cache once applied, sql after TALLY_MIN_WATERMARK_WAIT_MS), and whether
every waiting answer counted the write (it must).
"""
from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import calls, report
from bench.seed import seed_tenant
from bench.stack import ROOT, Stack
from tally.dev import keys as devkeys
from tally.stores.sql.db import Database

TENANT = "00000000-0000-4000-8000-000000021000"
WRITER = "rw-writer"


def progress(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


class Client:
    """One keep-alive connection to the web process."""

    def __init__(self, base_url: str):
        host, port = base_url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(self, method: str, path: str, headers: dict[str, str],
             body: str | None = None) -> tuple[float, int, dict[str, str], Any]:
        started = time.perf_counter()
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return elapsed, response.status, dict(response.getheaders()), json.loads(data or b"{}")


def sample(base_url: str, var_dir: str, tenant: str, seconds: float) -> dict[str, Any]:
    """Alternate write-then-wait and plain badge reads for `seconds`."""
    service = calls.service_headers(var_dir, tenant)
    reader = calls.headers(var_dir, tenant, WRITER, ["ticket_user"])
    client = Client(base_url)
    badge = f"{calls.API}/ticket/notification/count"
    waited: list[float] = []
    plain: list[float] = []
    sources: dict[str, int] = {}
    wrong = written = 0
    client.call("GET", badge, reader)  # warm the writer's counters
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        event = {"eventId": str(uuid.uuid4()), "type": "notification.created",
                 "occurredAt": "2026-12-07T03:00:00.000Z",
                 "data": {"id": f"rw-{uuid.uuid4().hex[:16]}", "userId": WRITER,
                          "type": "comment", "ticketId": "T-0000001", "priority": "high",
                          "createdAt": "2026-12-07T03:00:00.000Z"}}
        _, status, headers, _ = client.call("POST", f"{calls.API}/events", service,
                                            json.dumps({"events": [event]}))
        if status != 202:
            raise RuntimeError(f"POST /events answered {status}")
        written += 1
        elapsed, status, headers, body = client.call(
            "GET", badge, {**reader, "X-Min-Watermark": headers["X-Count-Watermark"]})
        waited.append(elapsed)
        sources[headers.get("X-Count-Source", "?")] = sources.get(
            headers.get("X-Count-Source", "?"), 0) + 1
        if status != 200 or body["data"]["total"] != written:
            wrong += 1
        elapsed, status, _, _ = client.call("GET", badge, reader)
        plain.append(elapsed)
    return {"samples": len(waited), "waited": waited, "plain": plain, "sources": sources,
            "wrong": wrong}


def measure(base_url: str, var_dir: str, tenant: str, users: list[str], tickets: int,
            rate: int, batch: int, seconds: float, ticket_share: float) -> dict[str, Any]:
    """Sample for `seconds` while bench/producer.py sends `rate` events/s to `tenant` (its
    `users` and `tickets`); needs the web process at `base_url` and a worker running."""
    spec = {"base_url": base_url, "headers": calls.service_headers(var_dir, tenant),
            "users": users, "rate": rate, "batch": batch, "seconds": seconds + 2,
            "ticket_share": ticket_share, "tickets": tickets, "senders": 16, "seed": 21}
    with tempfile.TemporaryDirectory(prefix="tally-ryw-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        producer = subprocess.Popen([sys.executable, "-m", "bench.producer", str(spec_path),
                                     str(out_path)], cwd=ROOT)
        try:
            time.sleep(1.0)  # the background rate is steady before sampling
            result = sample(base_url, var_dir, tenant, seconds)
        finally:
            if producer.wait(120) != 0:
                raise RuntimeError("the producer failed")
        records = json.loads(out_path.read_text())
    sent = sorted(r["sent"] for r in records)
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    result["rate"] = (len(records) - 1) * batch / span if span else 0.0
    return result


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Seed a tenant on a fresh stack, serve it with a worker, and measure."""
    with Stack(args.db, workdir) as stack:
        seeded = seed_tenant(Database(stack.db_url), TENANT, args.tickets, args.notifications,
                             args.users, devkeys.DEV_REALM, progress)
        with stack.web() as base, stack.worker():
            progress(f"sampling for {args.seconds:.0f} s at {args.rate} events/s")
            return measure(base, str(stack.var_dir), TENANT, list(seeded.notification_users),
                           args.tickets, args.rate, args.batch, args.seconds, args.ticket_share)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_your_writes",
                                     description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--db", default="sqlite", choices=("sqlite", "postgres"))
    add("--rate", type=int, default=500, help="background events/s")
    add("--batch", type=int, default=10, help="events per background POST")
    add("--seconds", type=float, default=20.0, help="seconds of sampling")
    add("--tickets", type=int, default=1_000)
    add("--notifications", type=int, default=5_000)
    add("--users", type=int, default=200)
    add("--ticket-share", type=float, default=0.3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-bench-ryw-") as workdir:
        result = run(args, Path(workdir))
    print(report.read_your_writes_row(result, args.db, args.rate))
    return 0 if result["wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
