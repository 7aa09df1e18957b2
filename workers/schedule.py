"""`python -m workers.schedule`: every SCHEDULE_INTERVAL seconds, enqueue the periodic jobs.

It only enqueues. Each periodic job gets a stable id per time slot (name + slot number), so two
schedulers, or a restart within a slot, enqueue it once; a job not started within a few slots
expires instead of piling up behind a stopped worker.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from tally.jobs import MAINTENANCE_QUEUE, SWEEP, enqueue_unique, make_job_id

log = logging.getLogger("workers.schedule")


@dataclass(frozen=True)
class Periodic:
    """A job enqueued every `every` seconds (None: every SCHEDULE_INTERVAL)."""

    name: str
    path: str
    queue: str
    every: int | None = None


PERIODIC: tuple[Periodic, ...] = (
    Periodic("sweep", SWEEP, MAINTENANCE_QUEUE),
)


def tick(queue_redis: redis.Redis, now_s: float, interval: int, job_timeout: int,
         table: tuple[Periodic, ...] = PERIODIC) -> list[str]:
    """Enqueue each periodic job for the slot `now_s` falls in; returns the ids enqueued."""
    enqueued = []
    for periodic in table:
        every = max(1, periodic.every or interval)
        slot = int(now_s // every)
        identifier = enqueue_unique(queue_redis, periodic.queue, periodic.path,
                                    job_id=make_job_id(periodic.name, slot),
                                    job_timeout=job_timeout, ttl=max(3 * every, 30),
                                    description=f"periodic {periodic.name}")
        if identifier:
            enqueued.append(identifier)
    return enqueued


def run(queue_redis: redis.Redis, interval: int, job_timeout: int, stop: threading.Event) -> None:
    """Tick until `stop` is set."""
    while not stop.is_set():
        tick(queue_redis, time.time(), interval, job_timeout)
        stop.wait(interval)


def main() -> int:
    from tally.app import create_app

    app = create_app()
    svc = app.extensions["tally"]
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("scheduler: signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    interval = int(svc.config.SCHEDULE_INTERVAL)
    log.info("scheduler: every %ds: %s", interval, ", ".join(p.name for p in PERIODIC))
    run(svc.queue_redis, interval, int(svc.config.JOB_TIMEOUT), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
