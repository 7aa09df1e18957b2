"""The scheduler and the worker as real processes: periodic enqueues, burst runs, clean stops."""
from __future__ import annotations

import threading

import pytest
from rq import Queue

from tally import jobs as names
from tally.core.clock import epoch_ms, from_epoch_ms
from tally.services import outbox
from tally.services.ingest import ingest
from tests.support import events as b
from tests.support import processes as procs
from tally.workers import schedule

pytestmark = pytest.mark.slow


def test_one_tick_per_slot_enqueues_each_periodic_job_once(queue_redis):
    first = schedule.tick(queue_redis, 1000.0, 5, 60)
    again = schedule.tick(queue_redis, 1004.9, 5, 60)
    later = schedule.tick(queue_redis, 1005.0, 5, 60)
    assert first == again != later
    queue = Queue(names.MAINTENANCE_QUEUE, connection=queue_redis)
    assert queue.count == 2
    assert {job.func_name for job in queue.jobs} == {names.SWEEP}
    assert all(job.ttl == 30 for job in queue.jobs)  # expires rather than piling up


def test_run_takes_its_slots_from_the_given_clock(queue_redis):
    # Given a clock far from the wall clock (an injected one), which stops the loop once read
    stop = threading.Event()

    def clock():
        stop.set()
        return from_epoch_ms(1_000_000)

    # When the scheduler loop runs, its one tick enqueues the slot of that time
    schedule.run(queue_redis, 5, 60, stop, clock=clock)

    assert Queue(names.MAINTENANCE_QUEUE, connection=queue_redis).job_ids == [
        names.make_job_id("sweep", 1_000 // 5)]


def test_every_periodic_job_path_is_a_known_job():
    assert {p.path for p in schedule.PERIODIC} <= set(names.JOB_PATHS)
    assert len({p.name for p in schedule.PERIODIC}) == len(schedule.PERIODIC)


def test_the_scheduler_enqueues_the_sweep_and_stops_on_sigterm(db_url, redis_url, realms_file,
                                                               queue_redis, tmp_path):
    log = tmp_path / "scheduler.log"
    env = procs.process_env(db_url, redis_url, realms_file)
    process = procs.start("tally.workers.schedule", env, log=log)
    queue = Queue(names.MAINTENANCE_QUEUE, connection=queue_redis)
    try:
        procs.wait_until(lambda: queue.count >= 1, 30, "a queued sweep", log)
    finally:
        code = procs.stop(process)
    assert code == 0, log.read_text()
    assert queue.jobs[0].func_name == names.SWEEP


def test_a_burst_worker_process_applies_the_outbox(
        app, db_url, redis_url, realms_file, queue_redis, tenant_id, tmp_path):
    svc = app.extensions["tally"]
    result = ingest(svc.db, tenant_id, b.loaded(b.created("n-1", "ann")), epoch_ms(svc.clock()))
    names.enqueue_apply(queue_redis, tenant_id, result.high_water)
    log = tmp_path / "worker.log"
    process = procs.start("tally.workers.run", procs.process_env(db_url, redis_url, realms_file),
                          "--burst", names.APPLY_QUEUE, log=log)
    assert process.wait(60) == 0, log.read_text()
    assert outbox.backlog(svc.db)[0] == 0
