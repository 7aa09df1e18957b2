"""`python -m tally.workers.run [--burst] [queue ...]`: the RQ worker for tally's queues.

It runs jobs in its own process (rq's SimpleWorker) instead of forking a work horse per job, so
the app built here once, its SQL and Redis connections, loaded scripts and compiled filter
predicates serve job after job; a fork per job cost more than most apply jobs do
(docs/decisions.md, "One worker process, no work horse per job"). What the horse gave is kept:

- SIGTERM is a warm shutdown: the running job finishes (an apply job takes no new batch after
  APPLY_BUDGET_SECONDS) and the worker exits 0. A second SIGTERM interrupts the job, which is
  failed and run again by its Retry.
- A SIGKILL mid-job loses nothing: the job's rows stay pending in the outbox (or applied but not
  marked), the sweep re-enqueues them and the dedupe set skips what Redis already has.
- Job timeouts: rq's death penalty (SIGALRM) interrupts a job in this process just the same.
- Memory: after WORKER_MAX_JOBS jobs the worker replaces itself with a fresh process (exec, same
  pid, so a supervisor sees no exit), dropping whatever the jobs left behind.

rq's own lines (a job's start and end at INFO, three a job: some 52,000 a day from the 5-second
sweep of an idle deployment alone) are logged from TALLY_RQ_LOG_LEVEL up, WARNING by default:
failures still show, and tally's jobs log what they did themselves.

The scheduler runs alongside (with_scheduler) because Retry intervals need it.
"""
from __future__ import annotations

import logging
import os
import resource
import signal
import sys

import redis
from rq import SimpleWorker

from tally.app import create_app
from tally.jobs import QUEUES
from tally.settings import Base
from tally.workers import jobs

log = logging.getLogger("tally.workers.run")


def build_worker(queues: list[str]) -> tuple[SimpleWorker, Base]:
    """A worker on the app's queue Redis (the app built once, here), and the app's config."""
    app = create_app()
    jobs.bind_app(app)
    config = app.extensions["tally"].config
    # Its own connection: rq raises the socket timeout above its blocking-pop timeout.
    connection = redis.Redis.from_url(config.queue_url)
    return SimpleWorker(queues, connection=connection), config


def recycle_due(worker: SimpleWorker, burst: bool, max_jobs: int) -> bool:
    """True when work() returned because the worker ran its max_jobs, not on a stop request.

    rq counts the jobs in the worker's hash, and records a SIGTERM that came during a job as its
    shutdown_requested_date (one while idle ends work() before max_jobs).
    """
    if burst or max_jobs <= 0:
        return False
    try:
        worker.refresh()
        ran = worker.successful_job_count + worker.failed_job_count
        return ran >= max_jobs and worker.shutdown_requested_date is None
    except redis.RedisError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    burst = "--burst" in args
    queues = [name for name in args if name != "--burst"] or list(QUEUES)
    worker, config = build_worker(queues)
    max_jobs = int(config.WORKER_MAX_JOBS)
    log.info("worker %s on %s", worker.name, ", ".join(queues))
    # rq sets its loggers (rq.worker, rq.job, rq.scheduler) to this level; our JSON handler on
    # the root logger writes what passes.
    worker.work(burst=burst, with_scheduler=not burst, logging_level=str(config.RQ_LOG_LEVEL),
                max_jobs=max_jobs if max_jobs > 0 and not burst else None)
    if not recycle_due(worker, burst, max_jobs):
        # rq's handlers stay installed after work(): a late SIGTERM would raise in our exit.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    log.info("worker %s ran its %d jobs (peak %d MiB resident); replacing itself with a fresh "
             "process", worker.name, max_jobs, peak_mib)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until the new process installs its own
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(sys.executable, [sys.executable, "-m", "tally.workers.run", *args])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
