"""Invariant 1 under faults: after the outbox drains, every counter equals SQL.

A real deployment (gunicorn, two RQ workers, the scheduler, a counter Redis and a queue Redis, a
database) takes a few thousand seeded ticket and notification events from concurrent producers
(duplicates and stale versions included) while readers warm counts; at seeded points in the stream a
worker is SIGKILLed (and replaced), the queue Redis restarted, the counter Redis FLUSHALLed, or
`tally cache rebuild` started alongside the writes, or every ticket predicate (MP) dropped as if
idle (the idle drop with its clock far ahead); the scheduled idle drop runs throughout. After the
outbox drains, `tally cache verify` must find no drift in any tenant, the sampling verify must have
counted none, and fresh answers over HTTP must equal a recount of the SQL rows. It runs on SQLite
and on PostgreSQL (about a minute each): PostgreSQL is production's (row locks, REPEATABLE READ
snapshots, outbox ids committed out of order), SQLite is `make run`'s (one writer at a time).

One seed, both databases (one line of results each):
    TALLY_CHAOS_SEED=7 .venv/bin/python -m pytest tests/chaos -k chaos_seed
add `and postgres` (or `and sqlite`) to -k for one database; TALLY_CHAOS_FAULTS=kill,flush (kinds:
kill, queue, flush, rebuild, drop; empty for none) narrows the faults when hunting a failure.
"""
from __future__ import annotations

import collections
import os
import random
import threading
import time
import uuid
from typing import Callable

import pytest

from tally.settings import Test
from tally.app import create_app
from tally.core.clock import epoch_ms, utc_now
from tally.services import maintenance
from tally.core.filters import SYSTEM_FILTERS
from tally.services import outbox, ticket_maintenance
from tally.services.tenants import create_tenant
from tally.stores import keys
from tests.support import recount
from tests.support.deployment import Cluster
from tests.support.traffic import (CALLERS, CUSTOM, PROFILE, Api, Budget, Readers, Tenant, produce,
                                   warm_everything)
from tests.support.tokens import REALM
from tests.support import processes as procs

pytestmark = [pytest.mark.both_databases, pytest.mark.slow]

SEED = int(os.environ.get("TALLY_CHAOS_SEED", "20260415"))
EVENTS = 3000
PRODUCERS = 4
READERS = 2
FAULTS_BETWEEN = (0.05, 0.75)  # fractions of the stream where faults fall
HOLD_AT = 0.85  # the stream waits here for the faults and a warm pass; the rest hits warm groups
FAULT_KINDS = ("kill", "kill", "queue", "flush", "rebuild", "rebuild", "drop", "drop")
DRAIN_DEADLINE_S = 240
DRIFT_LINE = "drift found by the sampling verify"
MIN_WARM_GROUPS = 100  # per tenant at the end: the warm pass after the last fault makes ~400


def fault_plan(seed: int, total: int, only: str | None = None) -> list[tuple[int, str]]:
    """When (events sent) and what: every kind at least once, a few more at random.

    `only` (TALLY_CHAOS_FAULTS, comma-separated kinds, empty for none) narrows the kinds, to
    find which fault a failure needs.
    """
    rng = random.Random(f"{seed}/faults")
    kinds = list(FAULT_KINDS) + rng.choices(("kill", "queue", "flush", "rebuild", "drop"), k=4)
    rng.shuffle(kinds)
    if only is not None:
        kinds = [kind for kind in kinds if kind in only.split(",")]
    low, high = (int(total * f) for f in FAULTS_BETWEEN)
    return list(zip(sorted(rng.randint(low, high) for _ in kinds), kinds))


def inject(cluster: Cluster, plan: list[tuple[int, str]], budget: Budget,
           producing: threading.Event, seed: int, warm: Callable[[], None],
           forget: Callable[[], None]) -> None:
    """Fire each fault once the stream reaches its point (or the producers have stopped), then
    warm every counter group before the held back rest of the stream flows."""
    try:
        _inject(cluster, plan, budget, producing, random.Random(f"{seed}/victims"), forget)
        warm()
    finally:
        budget.released.set()


def _inject(cluster: Cluster, plan: list[tuple[int, str]], budget: Budget,
            producing: threading.Event, rng: random.Random, forget: Callable[[], None]) -> None:
    """Fire each fault of the plan at its point in the stream."""
    for point, kind in plan:
        while budget.sent < point and producing.is_set():
            time.sleep(0.01)
        if not producing.is_set() and budget.sent < point:
            return  # the producers failed; their errors fail the test
        if kind == "kill":
            cluster.kill_worker(rng.randrange(2))
        elif kind == "queue":
            cluster.restart_queue()
        elif kind == "flush":
            cluster.flush_counters()
        elif kind == "drop":
            forget()
            cluster.faults["every MP dropped as idle"] += 1
        else:
            cluster.start_rebuild()


def provision(api: Api, db, count: int) -> list[Tenant]:
    """Tenants with the system filters, three shared custom filters and a profile each."""
    tenants = []
    admin = CALLERS[0]
    for _ in range(count):
        tenant = Tenant(str(uuid.uuid4()), epoch_ms(utc_now()))
        create_tenant(db, tenant.id, "chaos", REALM)
        tenant.filters = {spec.id: spec.conditions for spec in SYSTEM_FILTERS}
        for name, conditions in {**CUSTOM, "profile": PROFILE}.items():
            made = api.call("POST", "/filters", tenant.id, admin,
                            json={"name": name, "shared": True, "conditions": conditions})
            assert made.status_code == 201, made.text
            fid = made.json()["data"]["id"]
            if name == "profile":
                tenant.profile_id = fid
            else:
                tenant.filters[fid] = conditions
        tenants.append(tenant)
    return tenants


@pytest.fixture
def cluster(db_url, realms_file, tmp_path):
    deployment = Cluster(db_url, realms_file, tmp_path).start()
    yield deployment
    deployment.close()


@pytest.fixture
def svc(cluster, db_url, realms_file, var_dir):
    app = create_app(Test(), DATABASE_URL=db_url, REALMS_FILE=realms_file, VAR_DIR=var_dir,
                     **cluster.counters.settings)
    yield app.extensions["tally"]
    app.extensions["tally"].db.engine.dispose()


@pytest.fixture
def events() -> int:
    """Events the producers send (tests/cluster runs fewer)."""
    return EVENTS


def test_chaos_seed_counts_exact_after_faults(cluster, svc, events, var_dir, capsys):
    started = time.monotonic()
    api = Api(cluster.base, var_dir)
    tenants = provision(api, svc.db, 2)
    budget, producing = Budget(events, int(events * HOLD_AT)), threading.Event()
    plan = fault_plan(SEED, events, os.environ.get("TALLY_CHAOS_FAULTS"))
    readers = Readers(SEED, tenants, api, READERS).start()
    producers = [threading.Thread(target=produce, args=(n, SEED, tenants, api, budget))
                 for n in range(PRODUCERS)]
    producing.set()
    warming: list[str] = []

    def warm() -> None:
        warming.extend(f for tenant in tenants for f in warm_everything(api, tenant))

    forgotten: list[int] = []

    def forget() -> None:  # every MP's last read is before a cutoff an hour ahead: all idle
        ahead = epoch_ms(utc_now()) + 7_200_000
        forgotten.extend(ticket_maintenance.drop_idle(svc, tenant.id, ahead, 3_600_000).dropped
                         for tenant in tenants)

    faults = threading.Thread(target=inject,
                              args=(cluster, plan, budget, producing, SEED, warm, forget))
    for thread in (*producers, faults):
        thread.start()
    try:
        for thread in producers:
            thread.join(600)
            assert not thread.is_alive(), "a producer did not finish"
    finally:
        producing.clear()
        faults.join(300)
        readers.finish()
    assert not faults.is_alive()
    phases = {"stream": time.monotonic() - started}
    cluster.reap_rebuilds(timeout=300)
    errors = budget.errors + readers.errors + warming
    assert errors == [], errors[:5]

    # When the outbox drains (and the scheduled sampling verify has run at least once)
    procs.wait_until(lambda: outbox.backlog(svc.db)[0] == 0, DRAIN_DEADLINE_S,
                     "the outbox to drain", cluster.log("worker"))
    procs.wait_until(lambda: cluster.verify_runs() > 0, DRAIN_DEADLINE_S,
                     "a sampling verify run", cluster.log("worker"))
    procs.wait_until(lambda: cluster.trim_runs() > 0, DRAIN_DEADLINE_S,
                     "a trim run", cluster.log("worker"))
    sampled_drift = cluster.drift_counted + cluster.drift_metric()
    phases["drain"] = time.monotonic() - started - sum(phases.values())
    cluster.stop_background()
    procs.wait_until(lambda: not cluster.counters.keys(keys.PREFIX + ":*:lock:*"), 60,
                     "rebuild markers of killed processes to expire")
    warm = {t.id: sum(len(f.warm(svc, t.id)) for f in maintenance.FAMILIES) for t in tenants}

    # Then `tally cache verify` finds no drift in any tenant, user or filter
    verify = cluster.cli("cache", "verify")
    drift_lines = [line for line in verify.stdout.splitlines() if "redis=" in line]
    # ... and fresh answers over HTTP equal the SQL recount
    compared = [recount.compare(api, svc.db, tenant) for tenant in tenants]
    mismatches = [m for c in compared for m in c.mismatches]
    sources = sum((c.sources for c in compared), start=collections.Counter())
    logged_drift = cluster.log("worker").read_text().count(DRIFT_LINE)
    phases["check"] = time.monotonic() - started - sum(phases.values())
    with capsys.disabled():
        print(f"\nchaos seed {SEED} ({svc.db.engine.dialect.name}): {budget.sent} events sent "
              f"in {budget.batches} batches ({budget.duplicates} redelivered, "
              f"{len(budget.retried)} answered 503 and retried); faults: "
              + ", ".join(f"{kind} x{n}" for kind, n in sorted(cluster.faults.items()))
              + f"; MPs dropped by them: {sum(forgotten)}"
              f"; reads during the run: {dict(readers.sources)}; warm groups verified: {warm};"
              f" drift: verify {len(drift_lines)}, sampling {sampled_drift} in "
              f"{cluster.verify_runs()} runs (logged {logged_drift}), "
              f"{cluster.trim_runs()} trim runs, recount {len(mismatches)} of "
              f"{sum(c.checked for c in compared)}"
              f" answers {dict(sources)}; "
              + ", ".join(f"{phase} {seconds:.0f}s" for phase, seconds in phases.items()))
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    assert "2 tenant(s) verified" in verify.stdout and drift_lines == []
    assert mismatches == [], mismatches[:3]
    assert sampled_drift == 0 and logged_drift == 0
    assert budget.sent == events and budget.duplicates > 0
    assert sum(cluster.faults.values()) == len(plan)
    assert all(n >= MIN_WARM_GROUPS for n in warm.values()), warm
    assert sources["cache"] > 0, sources
