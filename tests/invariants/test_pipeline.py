"""Invariant 1 end to end: events over HTTP, a real worker process, and Redis equal to SQL after.

Random notification events (seeded, bounded) are posted with redeliveries mixed in; a real
`python -m tally.workers.run` applies the outbox; once it drains, every user's Redis hash must
equal a SQL recount, and SQL must equal an in-test model of the events. One test SIGKILLs the
worker (and its work horse) mid-run and loses its queued jobs, then shows a restart plus the
sweep converge.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from rq import Queue
from sqlalchemy import func, select

from tally import jobs as names
from tally.services import notifications
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, NotificationCounts
from tally.services import outbox
from tally.stores.sql import notification_counts as sql_counts
from tally.stores.sql.models import OutboxRow
from tests.support import events as b
from tests.support import processes as procs

pytestmark = [pytest.mark.both_databases, pytest.mark.slow]

USERS = tuple(f"user-{i}" for i in range(6))
SERVICE = ("ticket_service",)
DRAIN_DEADLINE_S = 120


@dataclass
class Model:
    """What SQL must hold after the events, computed independently of tally."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def apply(self, raw: dict[str, Any]) -> None:
        if raw["eventId"] in self.seen:
            return
        self.seen.add(raw["eventId"])
        data = raw["data"]
        if raw["type"] == "notification.created" and data["id"] not in self.rows:
            self.rows[data["id"]] = dict(user=data["userId"], type=data["type"],
                                         priority=data["priority"], read=False, deleted=False)
        elif raw["type"] == "notification.read":
            for nid in data["ids"]:
                row = self.rows.get(nid)
                if row and row["user"] == data["userId"] and not row["deleted"]:
                    row["read"] = True
        elif raw["type"] == "notification.deleted" and data["id"] in self.rows:
            self.rows[data["id"]]["deleted"] = True

    def counts(self, user: str) -> tuple[int, int, dict[str, int], dict[str, int]]:
        live = [r for r in self.rows.values() if r["user"] == user and not r["deleted"]]
        unread = [r for r in live if not r["read"]]
        return (len(live), len(unread),
                {t: sum(r["type"] == t for r in unread) for t in NOTIFICATION_TYPES},
                {p: sum(r["priority"] == p for r in unread) for p in PRIORITIES})


def random_batches(seed: int, batches: int, size: int) -> list[list[dict[str, Any]]]:
    """Batches of created/read/deleted events (some aimed at unknown or foreign ids) with
    redelivered events mixed in, and every seventh batch a redelivery of an earlier one."""
    rng = random.Random(seed)
    sent: list[dict[str, Any]] = []
    ids: list[tuple[str, str]] = []
    out: list[list[dict[str, Any]]] = []
    for number in range(batches):
        if number % 7 == 6:
            out.append(list(rng.choice(out)))
            continue
        batch = []
        for _ in range(size):
            roll = rng.random()
            if roll < 0.5 or not ids:
                nid, user = f"n-{len(ids)}", rng.choice(USERS)
                ids.append((nid, user))
                raw = b.created(nid, user, rng.choice(NOTIFICATION_TYPES), rng.choice(PRIORITIES))
            elif roll < 0.75:
                user = rng.choice(USERS)
                picked = [nid for nid, _ in rng.sample(ids, min(len(ids), rng.randint(1, 6)))]
                raw = b.read(user, picked + ["n-unknown"])
            elif roll < 0.9:
                raw = b.deleted(rng.choice(ids)[0] if rng.random() < 0.9 else "n-unknown")
            else:
                raw = dict(rng.choice(sent)) if sent else b.created("n-0", USERS[0])
            batch.append(raw)
            sent.append(raw)
        out.append(batch)
    return out


def post(client, headers, batch: list[dict[str, Any]], model: Model) -> None:
    response = client.post(b.EVENTS, json={"events": batch}, headers=headers(roles=SERVICE))
    assert response.status_code == 202, response.get_json()
    for raw in batch:
        model.apply(raw)


def comparable(counts: NotificationCounts) -> tuple[int, int, dict[str, int], dict[str, int]]:
    return counts.total, counts.unread, counts.by_type, counts.by_priority


def assert_exact(svc, tenant: str, model: Model) -> None:
    for user in USERS:
        with svc.db.snapshot() as session:
            in_sql = sql_counts.notification_counts(session, tenant, user)
        in_redis = svc.counters.read_notifications(tenant, user)
        assert in_redis == in_sql, user
        assert comparable(in_sql) == model.counts(user), user


def applied_rows(svc) -> int:
    with svc.db.snapshot() as session:
        return session.scalar(select(func.count()).select_from(OutboxRow)
                              .where(OutboxRow.applied_at.is_not(None)))


@pytest.fixture
def env(db_url, counter_store, realms_file):
    return counter_store.process_env(db_url, realms_file)


@pytest.fixture
def worker_log(tmp_path):
    return tmp_path / "worker.log"


@pytest.fixture
def svc(app):
    return app.extensions["tally"]


def test_counters_equal_sql_after_random_events_with_redelivery(client, headers, svc, tenant_id,
                                                                env, worker_log):
    # Given a real worker, half the users warm, the rest warmed while events flow
    worker = procs.start("tally.workers.run", env, log=worker_log)
    model = Model()
    batches = random_batches(seed=1207, batches=36, size=14)
    try:
        for user in USERS[:3]:
            assert notifications.rebuild_user(svc, tenant_id, user)
        # When the batches are posted, with rebuilds of the other users half way through
        for number, batch in enumerate(batches):
            post(client, headers, batch, model)
            if number == len(batches) // 2:
                for user in USERS[3:]:
                    notifications.rebuild_user(svc, tenant_id, user)
        procs.wait_until(lambda: outbox.backlog(svc.db)[0] == 0, DRAIN_DEADLINE_S,
                         "the outbox to drain", worker_log)
    finally:
        assert procs.stop(worker) == 0, worker_log.read_text()[-3000:]
    # Then every user's counters equal the SQL recount, and SQL equals the model
    assert len(model.rows) > 150
    assert_exact(svc, tenant_id, model)


def test_a_sigkilled_worker_loses_and_doubles_nothing_after_restart_and_sweep(
        client, headers, svc, tenant_id, env, worker_log, counter_store):
    # Given warm counters and a worker applying a stream of batches
    for user in USERS:
        assert notifications.rebuild_user(svc, tenant_id, user)
    model = Model()
    batches = random_batches(seed=4242, batches=48, size=12)
    worker = procs.start("tally.workers.run", env, log=worker_log)
    killed_at = None
    try:
        for number, batch in enumerate(batches):
            post(client, headers, batch, model)
            # When the worker (and any work horse) is SIGKILLed as soon as it has applied rows
            if killed_at is None and number >= 8 and applied_rows(svc) > 0:
                procs.kill_session(worker)
                killed_at = number
    finally:
        procs.stop(worker)
    assert killed_at is not None and killed_at < len(batches) - 1
    # ... and every job it left queued is lost too
    queue_redis = redis.Redis.from_url(counter_store.queue_url)
    Queue(names.APPLY_QUEUE, connection=queue_redis).empty()
    assert outbox.backlog(svc.db)[0] > 0
    # When a new worker starts and the sweep runs
    restarted = procs.start("tally.workers.run", env, log=worker_log)
    try:
        names.enqueue_unique(queue_redis, names.MAINTENANCE_QUEUE, names.SWEEP,
                             job_id="sweep-after-kill")
        procs.wait_until(lambda: outbox.backlog(svc.db)[0] == 0, DRAIN_DEADLINE_S,
                         "the outbox to drain after the restart", worker_log)
    finally:
        assert procs.stop(restarted) == 0, worker_log.read_text()[-3000:]
        queue_redis.close()
    # Then nothing was lost or counted twice
    assert_exact(svc, tenant_id, model)
