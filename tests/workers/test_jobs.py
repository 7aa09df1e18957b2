"""The RQ jobs on a real redis-server, run by SimpleWorker in burst mode inside the test's app."""
from __future__ import annotations

import importlib
import logging
import os
from datetime import timedelta

import pytest
import redis
from rq import Queue, SimpleWorker

from tally import jobs as names
from tally.core.clock import epoch_ms, utc_now
from tally.services import notifications
from tally.services import outbox
from tally.services.ingest import ingest
from tally.dev.launcher import free_port
from tests.support import events as b
from tally.workers import jobs


@pytest.fixture
def svc(app):
    return app.extensions["tally"]


def drain(app, queue_redis, *queue_names):
    """Run every queued job of the named queues in this process, inside the app."""
    queues = [Queue(name, connection=queue_redis) for name in queue_names or names.QUEUES]
    with app.app_context():
        return SimpleWorker(queues, connection=queue_redis).work(burst=True)


def post(svc, tenant, *raw):
    return ingest(svc.db, tenant, b.loaded(*raw), epoch_ms(svc.clock()))


@pytest.mark.parametrize("path", names.JOB_PATHS)
def test_every_job_path_imports_to_a_callable(path):
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_apply_job_ids_are_deterministic_and_safe():
    first = names.apply_job_id("t", 7)
    assert first == names.apply_job_id("t", 7) != names.apply_job_id("t", 8)
    assert names.apply_job_id("t", 7, "sweep-1") != first
    assert first.replace("-", "").replace("_", "").isalnum()


def test_enqueueing_the_same_high_water_twice_queues_one_job(queue_redis):
    assert names.enqueue_apply(queue_redis, "t", 7) == names.enqueue_apply(queue_redis, "t", 7)
    queue = Queue(names.APPLY_QUEUE, connection=queue_redis)
    assert queue.count == 1
    [job] = queue.jobs
    assert (job.func_name, job.args, job.result_ttl, job.failure_ttl) == (
        names.APPLY_TENANT, ("t", 7), names.RESULT_TTL, names.FAILURE_TTL)
    assert job.retry_intervals == names.APPLY_RETRY_INTERVALS


def test_a_down_queue_redis_is_logged_not_raised(caplog):
    down = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    assert names.enqueue_apply(down, "t", 1) is None
    assert "outbox sweep will catch up" in caplog.text


def test_apply_tenant_job_brings_warm_counters_up_to_date(app, svc, queue_redis, tenant_id):
    assert notifications.rebuild_user(svc, tenant_id, "ann")
    result = post(svc, tenant_id, b.created("n-1", "ann"), b.created("n-2", "ann"))
    names.enqueue_apply(queue_redis, tenant_id, result.high_water)
    assert drain(app, queue_redis, names.APPLY_QUEUE)
    assert svc.counters.read_notifications(tenant_id, "ann").unread == 2
    assert outbox.backlog(svc.db)[0] == 0


def test_sweep_reenqueues_tenants_whose_jobs_were_lost(app, svc, queue_redis, tenant_id):
    # Given committed rows whose apply job never reached the queue
    assert notifications.rebuild_user(svc, tenant_id, "ann")
    post(svc, tenant_id, b.created("n-1", "ann"))
    # When the sweep runs, then the jobs it enqueued
    names.enqueue_unique(queue_redis, names.MAINTENANCE_QUEUE, names.SWEEP, job_id="sweep-test")
    drain(app, queue_redis, names.MAINTENANCE_QUEUE)
    assert Queue(names.APPLY_QUEUE, connection=queue_redis).count == 1
    drain(app, queue_redis, names.APPLY_QUEUE)
    # Then the outbox is drained and the counter is right
    assert outbox.backlog(svc.db)[0] == 0
    assert svc.counters.read_notifications(tenant_id, "ann").total == 1


@pytest.mark.both_databases
def test_sweep_prunes_rows_past_retention(make_app, queue_redis, tenant_id):
    app = make_app(OUTBOX_RETENTION_SECONDS=0)
    svc = app.extensions["tally"]
    post(svc, tenant_id, b.created("n-1", "ann"))
    post(svc, tenant_id, b.created("n-2", "bob"))
    outbox.apply_pending(svc, tenant_id)
    svc.clock = lambda: utc_now() + timedelta(seconds=1)
    with app.app_context():
        assert jobs.sweep()["pruned"] == 1  # the newest row stays (outbox.prune: ids never reused)


def test_a_sweep_logs_a_line_only_when_it_did_something(make_app, queue_redis, tenant_id,
                                                        caplog):
    app = make_app(OUTBOX_RETENTION_SECONDS=0)
    svc = app.extensions["tally"]
    caplog.set_level(logging.INFO, logger="tally.workers.jobs")
    with app.app_context():
        assert jobs.sweep()["pruned"] == 0  # every few seconds on an idle deployment: silent
        assert [r.getMessage() for r in caplog.records if r.name == "tally.workers.jobs"] == []
        post(svc, tenant_id, b.created("n-1", "ann"))
        post(svc, tenant_id, b.created("n-2", "bob"))
        outbox.apply_pending(svc, tenant_id)
        svc.clock = lambda: utc_now() + timedelta(seconds=1)
        assert jobs.sweep()["pruned"] == 1
    [line] = [r.getMessage() for r in caplog.records if r.name == "tally.workers.jobs"]
    assert line.endswith("0 lagging tenants re-enqueued, 1 outbox rows pruned")


def test_a_second_sweep_skips_while_the_first_holds_the_lock(app, queue_redis):
    queue_redis.set(jobs.SWEEP_LOCK_KEY, "someone-else", ex=60)
    with app.app_context():
        assert jobs.sweep() == {"skipped": True}
    assert queue_redis.get(jobs.SWEEP_LOCK_KEY) == b"someone-else"


def test_sweep_releases_its_lock(app, queue_redis):
    with app.app_context():
        assert jobs.sweep()["skipped"] is False
    assert queue_redis.get(jobs.SWEEP_LOCK_KEY) is None


def test_outside_an_app_context_a_job_uses_the_bound_app(app, svc, tenant_id, monkeypatch):
    monkeypatch.setattr(jobs, "_app", None)
    monkeypatch.setattr(jobs, "_app_pid", None)
    jobs.bind_app(app)
    post(svc, tenant_id, b.created("n-1", "ann"))
    assert jobs.apply_tenant(tenant_id, 1)["rows"] == 1


def test_a_forked_process_drops_the_inherited_sql_pool(app, svc, monkeypatch):
    monkeypatch.setattr(jobs, "_app", app)
    monkeypatch.setattr(jobs, "_app_pid", os.getpid() + 1)  # as if we were a fresh fork
    inherited = svc.db.engine.pool
    jobs.apply_tenant("3a1c3d5e-2a4b-4c6d-8e9f-0a1b2c3d4e5f", 0)
    assert svc.db.engine.pool is not inherited
    assert jobs._app_pid == os.getpid()
