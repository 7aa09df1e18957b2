"""`python -m workers.run [--burst] [queue ...]`: the RQ worker for tally's queues.

It uses rq's HerokuWorker, which forks a work horse per job: a job that crashes, leaks or hits its
timeout takes only its horse down, and the app built here once is shared by every fork. On SIGTERM
the horse gets `imminent_shutdown_delay` seconds to finish, then its job is failed cleanly (and
retried by its Retry) instead of dying to the platform's later SIGKILL; every tally job is
idempotent and the outbox sweep re-enqueues whatever was cut short, so a retried or lost job
never loses or doubles a count. The scheduler runs alongside (with_scheduler) because Retry
intervals need it.
"""
from __future__ import annotations

import logging
import sys

import redis
from rq.worker import HerokuWorker

from tally.app import create_app
from tally.jobs import QUEUES
from workers import jobs

log = logging.getLogger("workers.run")


def build_worker(queues: list[str]) -> HerokuWorker:
    """The app (built once, before any fork) and a worker on its queue Redis."""
    app = create_app()
    jobs.bind_app(app)
    config = app.extensions["tally"].config
    # Its own connection: rq raises the socket timeout above its blocking-pop timeout.
    connection = redis.Redis.from_url(config.queue_url)
    return HerokuWorker(queues, connection=connection)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    burst = "--burst" in args
    queues = [name for name in args if name != "--burst"] or list(QUEUES)
    worker = build_worker(queues)
    log.info("worker %s on %s", worker.name, ", ".join(queues))
    worker.work(burst=burst, with_scheduler=not burst, logging_level="INFO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
