"""The worker process without work horses: jobs run in it, SIGTERM lets the running job finish,
job timeouts still stop a job, and after WORKER_MAX_JOBS it replaces itself under the same pid.

Jobs here are plain callables (os.getpid, time.sleep) where only the worker's handling matters.
The database is SQLite only: nothing here depends on it.
"""
from __future__ import annotations

import json
import shutil
import signal
import uuid

import pytest
from rq import Queue
from rq.job import JobStatus

from tally import jobs as names
from tests.support import processes as procs

pytestmark = pytest.mark.slow


@pytest.fixture
def queue(queue_redis):
    return Queue(names.APPLY_QUEUE, connection=queue_redis)


@pytest.fixture
def env(tmp_path, sqlite_template, redis_url, realms_file):
    path = tmp_path / "tally.db"
    shutil.copy(sqlite_template, path)
    return procs.process_env(f"sqlite:///{path}", redis_url, realms_file)


@pytest.fixture
def log(tmp_path):
    return tmp_path / "worker.log"


def test_jobs_run_in_the_worker_process_itself(env, queue, log):
    first, second = queue.enqueue("os.getpid"), queue.enqueue("os.getpid")
    process = procs.start("tally.workers.run", env, "--burst", names.APPLY_QUEUE, log=log)
    assert process.wait(60) == 0, log.read_text()
    assert first.return_value() == second.return_value() == process.pid


def test_sigterm_lets_the_running_job_finish_and_takes_no_other(env, queue, log):
    # Given a worker running a job, with another job queued behind it
    running = queue.enqueue("time.sleep", 2, job_timeout=60)
    waiting = queue.enqueue("os.getpid")
    process = procs.start("tally.workers.run", env, names.APPLY_QUEUE, log=log)
    try:
        procs.wait_until(lambda: running.get_status(refresh=True) == JobStatus.STARTED, 60,
                         "the job to start", log)
        # When the platform asks it to stop
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    finally:
        procs.stop(process)
    # Then the running job finished, the queued one waits for the next worker, and it exited 0
    assert code == 0, log.read_text()
    assert running.get_status(refresh=True) == JobStatus.FINISHED
    assert waiting.get_status(refresh=True) == JobStatus.QUEUED


def test_a_job_past_its_timeout_is_stopped_and_the_worker_goes_on(env, queue, log):
    slow = queue.enqueue("time.sleep", 120, job_timeout=1)
    after = queue.enqueue("os.getpid")
    process = procs.start("tally.workers.run", env, "--burst", names.APPLY_QUEUE, log=log)
    assert process.wait(60) == 0, log.read_text()
    assert slow.get_status(refresh=True) == JobStatus.FAILED
    assert "JobTimeoutException" in slow.latest_result().exc_string
    assert after.return_value() == process.pid


def test_after_its_max_jobs_the_worker_replaces_itself_under_the_same_pid(env, queue, log):
    # Given a worker allowed two jobs per process, and two apply jobs (nothing to apply)
    env = dict(env, TALLY_WORKER_MAX_JOBS="2")
    applies = [queue.enqueue(names.APPLY_TENANT, str(uuid.uuid4()), 1) for _ in range(2)]
    process = procs.start("tally.workers.run", env, names.APPLY_QUEUE, log=log)
    try:
        procs.wait_until(lambda: all(job.get_status(refresh=True) == JobStatus.FINISHED
                                     for job in applies), 90, "the apply jobs", log)
        # When one more job asks which process runs it
        pid = queue.enqueue("os.getpid")
        procs.wait_until(lambda: pid.get_status(refresh=True) == JobStatus.FINISHED, 60,
                         "the pid job", log)
    finally:
        code = procs.stop(process)
    # Then the two jobs ran in one rq worker, the next in its successor, which runs under the pid
    # the platform knows, and stops cleanly
    names_of = [job.latest_result().worker_name for job in applies + [pid]]
    assert names_of[0] == names_of[1] != names_of[2]
    assert pid.return_value() == process.pid
    assert code == 0, log.read_text()


def _rq_info_lines(log) -> list[str]:
    """The messages of rq's own INFO lines in a worker's (JSON) log."""
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [entry["msg"] for entry in entries
            if entry["logger"].startswith("rq.") and entry["level"] == "INFO"]


def test_rq_logs_no_line_per_job_by_default(env, queue, log):
    # Given a worker with the default TALLY_RQ_LOG_LEVEL (WARNING), when it runs a job
    job = queue.enqueue("os.getpid")
    process = procs.start("tally.workers.run", env, "--burst", names.APPLY_QUEUE, log=log)
    assert process.wait(60) == 0, log.read_text()
    # Then the job ran and rq said nothing about it (nor anything else) at INFO
    assert job.return_value() == process.pid
    assert _rq_info_lines(log) == [], log.read_text()


def test_rq_logs_each_job_when_the_setting_asks(env, queue, log):
    job = queue.enqueue("os.getpid")
    process = procs.start("tally.workers.run", dict(env, TALLY_RQ_LOG_LEVEL="info"), "--burst",
                          names.APPLY_QUEUE, log=log)
    assert process.wait(60) == 0, log.read_text()
    assert any(job.id in line for line in _rq_info_lines(log)), log.read_text()
