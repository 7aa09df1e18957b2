"""`python -m bench.worker_throughput [--db sqlite|postgres] [--events N] [--batch B]
[--me-agents N] [--profile FILE] [--json]`

Measures the write path: how fast the real ingest code takes events into SQL, and how many events
ONE real worker process (`python -m tally.workers.run`) applies to the counters per second.

1. Seeds a tenant in a throwaway database (a SQLite file, or a PostgreSQL cluster started in a
   temp dir; `--postgres-url` or TALLY_TEST_POSTGRES_URL to use a running server) and a
   redis-server of its own: the system filters plus the demo's custom filters, BASE_TICKETS
   tickets, every filter materialised by real POST /ticket/count reads of an admin, agents across
   teams and requesters, and warm notification counters for every user. `--me-agents N`: N more
   agents (`me-agent-<i>`, one team each) then each read Assigned to Me (`assigneeId eq $me`, the
   sidebar's "my open tickets"), as N agents who once opened a `$me` filter leave their cells
   (and, were `$me` resolved into the predicate, N predicates) for the worker to maintain.
2. Ingests N events (bench/worker_workload.py: new tickets, updates across statuses, teams and
   assignees, a few deletes, notifications created and read) in calls of B events through
   tally.services.ingest, enqueueing an apply job after each call as POST /events does; each call
   is timed (validation is not).
3. Drain mode (default): the events are ingested with no worker running; then one worker starts
   and is timed from its registration in RQ to the last outbox row applied.
   Live mode (`--live RATE`): the worker runs first and the calls are paced at RATE events/s;
   the report adds the lag from ingest to applied (outbox created_at → applied_at, per event).
4. Runs `tally cache verify` for the tenant: the counters must equal SQL (drift 0).

The worker's and the counter Redis's CPU seconds are reported too: on a shared machine they are
steadier than wall time. Progress goes to stderr; stdout gets one human line, or with --json one
JSON object: {"events", "seconds", "events_per_second", "ingest_events_per_second", "db", ...}.
`--profile FILE` runs the worker under cProfile (`python -m cProfile -o FILE -m
tally.workers.run`, its whole life: startup included) with TALLY_WORKER_MAX_JOBS=0, as a worker
that recycled would exec itself out of the profiler; the stats (a pstats dump, written when the
worker exits on SIGTERM) go to FILE and their top lines by cumulative time to stderr. Its times
and CPU seconds then include cProfile's overhead.
Never part of the test suite: numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator

import redis
from rq import Worker
from sqlalchemy import func, select

from bench.proc import cpu_seconds
from bench.worker_workload import AGENTS, REQUESTERS, TEAMS, USERS, Workload
from tally.settings import Production
from tally import jobs as names
from tally.app import create_app
from tally.dev import keys as devkeys
from tally.core.clock import epoch_ms
from tally.services import maintenance, notifications
from tally.core.filters import DEMO_FILTERS, SYSTEM_FILTERS
from tally.dev.demo import CATEGORY_FILTERS
from tally.services import outbox
from tally.services.ingest import ingest
from tally.http.schemas.events import load_events
from tally.dev.launcher import RedisProcess
from tally.services.tenants import create_tenant, filter_row
from tally.stores.sql.db import Database
from tally.stores.sql.models import OutboxRow

ROOT = Path(__file__).resolve().parents[1]
TENANT = "b3c4d5e6-0000-4000-8000-00000000be0c"
BASE_TICKETS = 2000
MY_OPEN_TICKETS = "7471"  # Assigned to Me: open tickets whose assigneeId is $me
DRAIN_DEADLINE_S = 900
FILTER_IDS = [s.id for s in SYSTEM_FILTERS] + [s.id for s in CATEGORY_FILTERS + DEMO_FILTERS]


def progress(line: str) -> None:
    print(f"[worker_throughput] {line}", file=sys.stderr, flush=True)


def chunks(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start:start + size]


# -- the environment ---------------------------------------------------------------------------
def database_url(kind: str, workdir: str, stack: ExitStack, server: str | None) -> str:
    """A fresh, migrated database: a SQLite file, or one on a PostgreSQL server."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir}/tally.db"
    else:
        from tests.support.postgres import PostgresCluster, create_database, drop_database

        if server is None:
            progress("starting a throwaway PostgreSQL cluster")
            cluster = PostgresCluster().start()
            stack.callback(cluster.stop)
            server = cluster.url
        url = create_database(server)
        stack.callback(drop_database, url)
    db = Database(url)
    db.upgrade()
    db.engine.dispose()
    return url


def count_as(client: Any, var_dir: str, user: str, roles: list[str], teams: list[str],
             view: str, filter_ids: list[str]) -> None:
    """One POST /ticket/count as `user`, materialising (and warming) what it reads."""
    token = devkeys.dev_token(var_dir, tenant=TENANT, user=user, roles=roles, teams=teams)
    response = client.post(f"/api/v2/ticketing/ticket/count?type={view}&module=ticketing",
                           json={"filterIds": filter_ids, "timezone": "Europe/Berlin"},
                           headers={"Authorization": f"Bearer {token}", "x-tenantid": TENANT,
                                    "realmname": devkeys.DEV_REALM,
                                    "accept": "application/json"})
    if response.status_code != 200:
        raise SystemExit(f"materialising counts for {user} failed: {response.get_json()}")


def seed(app: Any, workload: Workload, var_dir: str, me_agents: int) -> int:
    """The tenant, its filters and base tickets, with every counter the reads below warm;
    returns the number of materialised predicates the worker will evaluate."""
    svc = app.extensions["tally"]
    create_tenant(svc.db, TENANT, "Bench Inc.", devkeys.DEV_REALM)
    with svc.db.write() as session:
        session.add_all(filter_row(TENANT, spec, 1000 + i, workload.now, owner_id="admin",
                                   shared=True)
                        for i, spec in enumerate(CATEGORY_FILTERS + DEMO_FILTERS))
    base = [workload.new_ticket() for _ in range(BASE_TICKETS)]
    for chunk in chunks(base, 500):
        ingest(svc.db, TENANT, load_events({"events": chunk}), workload.now)
    outbox.apply_pending(svc, TENANT)
    client = app.test_client()
    readers = [("admin", ["ticket_admin"], [], "template")]
    readers += [(agent, ["ticket_agent"], [TEAMS[i % 6], TEAMS[(i + 1) % 6]][:1 + i % 2],
                 "agent") for i, agent in enumerate(AGENTS)]
    readers += [(r, ["ticket_user"], [], "user") for r in REQUESTERS[:4]]
    for user, roles, teams, view in readers:
        count_as(client, var_dir, user, roles, teams, view, FILTER_IDS)
    for i in range(me_agents):
        count_as(client, var_dir, f"me-agent-{i}", ["ticket_agent"], [TEAMS[i % len(TEAMS)]],
                 "agent", [MY_OPEN_TICKETS])
        if (i + 1) % 200 == 0:
            progress(f"{i + 1}/{me_agents} agents opened Assigned to Me")
    for user in USERS:
        notifications.rebuild_user(svc, TENANT, user)
    mps = len(svc.ticket_counters.registry(TENANT).mps)
    progress(f"seeded {BASE_TICKETS} tickets, {len(FILTER_IDS)} filters, {len(readers)} readers "
             f"and {me_agents} agents of Assigned to Me ({mps} materialised predicates), "
             f"{len(USERS)} warm notification users")
    return mps


def ingest_all(app: Any, events: list[dict[str, Any]], batch: int,
               rate: float | None = None) -> dict[str, float]:
    """Ingest in calls of `batch` events as POST /events does (validation not timed), paced at
    `rate` events/s if given: seconds, slowest call, accepted events and CPU seconds spent."""
    svc = app.extensions["tally"]
    loaded = [load_events({"events": chunk}) for chunk in chunks(events, batch)]
    out = {"seconds": 0.0, "slowest": 0.0, "accepted": 0, "cpu": 0.0}
    began = time.monotonic()
    for number, chunk in enumerate(loaded, 1):
        if rate:
            time.sleep(max(0.0, began + (number - 1) * batch / rate - time.monotonic()))
        start, start_cpu = time.perf_counter(), time.process_time()
        result = ingest(svc.db, TENANT, chunk, epoch_ms(svc.clock()))
        took = time.perf_counter() - start
        out["cpu"] += time.process_time() - start_cpu
        out["seconds"] += took
        out["slowest"] = max(out["slowest"], took)
        out["accepted"] += result.accepted
        if result.high_water is not None:
            names.enqueue_apply(svc.queue_redis, TENANT, result.high_water)
        if number % max(1, len(loaded) // 5) == 0:
            progress(f"ingested {number}/{len(loaded)} calls")
    return out


def redis_cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class WorkerRun:
    """One `python -m tally.workers.run` process, timed and CPU-metered from its RQ registration."""

    def __init__(self, app: Any, db_url: str, redis_url: str, realms: str, log_path: Path,
                 profile: Path | None = None):
        self.svc = app.extensions["tally"]
        self.counters = redis.Redis.from_url(redis_url)
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        self.env.update(TALLY_ENV="production", TALLY_DATABASE_URL=db_url,
                        TALLY_REDIS_URL=redis_url, TALLY_REALMS_FILE=realms,
                        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
        self.profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
        if profile:
            self.env.update(TALLY_WORKER_MAX_JOBS="0")  # never exec out of the profiler

    def start(self) -> "WorkerRun":
        self.spawned = time.time()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, *self.profiler, "-m",
                                             "tally.workers.run"], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        while Worker.count(connection=self.svc.queue_redis) == 0:
            if self.process.poll() is not None:
                raise SystemExit(f"the worker exited early; see {self.log_path}")
            time.sleep(0.01)
        self.ready = time.time()
        self.cpu = cpu_seconds(self.process.pid)
        self.redis_cpu = redis_cpu_seconds(self.counters)
        progress(f"worker ready after {self.ready - self.spawned:.2f}s")
        return self

    def drained(self) -> dict[str, float]:
        """Wait until the outbox is empty: seconds from ready and from spawn to the last row
        applied, and the CPU seconds of the worker and the counter Redis since ready."""
        deadline = time.monotonic() + DRAIN_DEADLINE_S
        while outbox.backlog(self.svc.db)[0] > 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"the outbox did not drain; see {self.log_path}")
            time.sleep(0.05)
        cpu = cpu_seconds(self.process.pid) - self.cpu
        redis_cpu = redis_cpu_seconds(self.counters) - self.redis_cpu
        with self.svc.db.snapshot() as session:
            last = session.scalar(select(func.max(OutboxRow.applied_at)).where(
                OutboxRow.tenant_id == TENANT)) / 1000
        return {"seconds": last - self.ready, "with_startup": last - self.spawned, "cpu": cpu,
                "redis_cpu": redis_cpu}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.process.returncode != 0:
            progress(f"the worker exited with {self.process.returncode} on SIGTERM; see "
                     f"{self.log_path}")
        self.counters.close()


def lag_ms(db: Database, since_ms: int) -> dict[str, float]:
    """Percentiles of ingest → applied (outbox created_at → applied_at) over events since."""
    with db.snapshot() as session:
        rows = session.execute(select(OutboxRow.created_at, OutboxRow.applied_at,
                                      OutboxRow.payload).where(OutboxRow.tenant_id == TENANT,
                                                               OutboxRow.created_at >= since_ms))
        lags = sorted((row.applied_at - row.created_at, len(json.loads(row.payload)["changes"]))
                      for row in rows)
    total = sum(weight for _, weight in lags)
    out: dict[str, float] = {}
    for name, share in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        seen = 0
        for lag, weight in lags:
            seen += weight
            if seen >= share * total:
                out[name] = float(lag)
                break
    return out


def measure(args: argparse.Namespace, workdir: str, stack: ExitStack) -> dict[str, Any]:
    server = RedisProcess(workdir=workdir).start()
    stack.callback(server.stop)
    db_url = database_url(args.db, workdir, stack,
                          args.postgres_url or os.environ.get("TALLY_TEST_POSTGRES_URL"))
    realms = devkeys.ensure_dev_realm(workdir)
    app = create_app(Production(), DATABASE_URL=db_url, REDIS_URL=server.url,
                     REALMS_FILE=realms, VAR_DIR=workdir)
    svc = app.extensions["tally"]
    stack.callback(svc.db.engine.dispose)
    workload = Workload(args.seed, epoch_ms(svc.clock()))
    mps = seed(app, workload, workdir, args.me_agents)
    events = list(workload.mixed(args.events))
    worker = WorkerRun(app, db_url, server.url, realms, Path(workdir) / "worker.log",
                       args.profile)
    if args.live:
        worker.start()
        stack.callback(worker.stop)
    started_ms = epoch_ms(svc.clock())
    progress(f"ingesting {len(events)} events in calls of {args.batch}"
             + (f" at {args.live:g} events/s" if args.live else " (no worker running)"))
    took = ingest_all(app, events, args.batch, args.live)
    pending, _ = outbox.backlog(svc.db)
    progress(f"ingest took {took['seconds']:.2f}s (slowest call {took['slowest']:.2f}s); "
             f"{pending} outbox rows pending")
    if not args.live:
        worker.start()
        stack.callback(worker.stop)
    run = worker.drained()
    accepted, seconds = int(took["accepted"]), run["seconds"]
    result = {"events": accepted, "seconds": round(seconds, 3),
              "events_per_second": round(accepted / seconds, 1),
              "ingest_events_per_second": round(accepted / took["seconds"], 1), "db": args.db,
              "mode": f"live {args.live:g}/s" if args.live else "drain",
              "ingest_seconds": round(took["seconds"], 3), "ingest_batch": args.batch,
              "ingest_slowest_call_seconds": round(took["slowest"], 3),
              "ingest_cpu_seconds": round(took["cpu"], 3),
              "seconds_with_startup": round(run["with_startup"], 3),
              # CPU seconds while applying: the machine may be shared, these are steadier.
              "worker_cpu_seconds": round(run["cpu"], 3),
              "events_per_worker_cpu_second": round(accepted / max(run["cpu"], 1e-3), 1),
              "redis_cpu_seconds": round(run["redis_cpu"], 3),
              "me_agents": args.me_agents, "materialised_predicates": mps}
    if args.live:
        result["lag_ms"] = lag_ms(svc.db, started_ms)
    if not args.no_verify:
        drift = maintenance.verify(svc, TENANT)
        result["drift"] = len(drift.differences)
        progress(f"verify: {len(drift.differences)} differences")
    return result


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_throughput",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--events", type=int, default=20_000, help="events to ingest and apply")
    parser.add_argument("--batch", type=int, default=500, help="events per ingest call (<= 5000)")
    parser.add_argument("--live", type=float, metavar="RATE",
                        help="run the worker while ingesting at RATE events/s (reports lag)")
    parser.add_argument("--me-agents", type=int, default=0, metavar="N",
                        help="N more agents each read Assigned to Me ($me) before the run")
    parser.add_argument("--seed", type=int, default=20250710)
    parser.add_argument("--postgres-url", help="a PostgreSQL server to use instead of a cluster")
    parser.add_argument("--no-verify", action="store_true", help="skip the drift check")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker log)")
    parser.add_argument("--profile", type=lambda path: Path(path).resolve(), metavar="FILE",
                        help="run the worker under cProfile; write its stats (pstats) to FILE")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = tempfile.mkdtemp(prefix="tally-bench-worker-")
    if args.profile:
        args.profile.unlink(missing_ok=True)  # no stale stats if the worker writes none
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        result = measure(args, workdir, stack)
    if args.profile:  # the worker has stopped: cProfile wrote its stats on the way out
        if args.profile.exists():
            pstats.Stats(str(args.profile), stream=sys.stderr).sort_stats(
                "cumulative").print_stats(25)
        else:
            progress(f"the worker wrote no profile to {args.profile}")
    if args.json:
        print(json.dumps(result))
    else:
        lag = result.get("lag_ms")
        print(f"{args.db} ({result['mode']}): {result['events']} events applied by one worker in "
              f"{result['seconds']:.2f}s = {result['events_per_second']:.0f} events/s "
              f"({result['events_per_worker_cpu_second']:.0f} per worker CPU second); ingest "
              f"{result['ingest_events_per_second']:.0f} events/s (calls of {args.batch}, "
              f"slowest {result['ingest_slowest_call_seconds']:.2f}s)"
              + (f"; lag p50 {lag['p50']:.0f} ms, p99 {lag['p99']:.0f} ms" if lag else "")
              + f"; {result['me_agents']} agents of Assigned to Me, "
              f"{result['materialised_predicates']} materialised predicates"
              + f"; drift {result.get('drift', 'not checked')}")
    return 0 if result.get("drift", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
