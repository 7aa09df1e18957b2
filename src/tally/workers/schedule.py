"""`python -m tally.workers.schedule`: every SCHEDULE_INTERVAL seconds, enqueue the periodic jobs.

The table is PERIODIC (fixed intervals: the outbox sweep) plus CONFIGURED, whose intervals come
from settings (the sampling verify, every VERIFY_INTERVAL_SECONDS; the prune of seen event ids
past the redelivery horizon, every SEEN_EVENTS_PRUNE_INTERVAL_SECONDS; trimming of timed cells,
every TRIM_INTERVAL_SECONDS; the idle-MP drop, 24 times per MP_IDLE_SECONDS; 0 turns a job
off).

It only enqueues. Each periodic job gets a stable id per time slot (name + slot number), so two
schedulers, or a restart within a slot, enqueue it once; a job not started within a few slots
expires instead of piling up behind a stopped worker.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

import redis

from tally.app import create_app
from tally.core.clock import Clock, utc_now
from tally.jobs import (DROP_IDLE, FORGET_SEEN_EVENTS, MAINTENANCE_QUEUE, SWEEP, TRIM,
                        VERIFY_SAMPLE, enqueue_unique, make_job_id)

log = logging.getLogger("tally.workers.schedule")


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


@dataclass(frozen=True)
class Configured:
    """A job enqueued every `<setting>` seconds of the config; a setting of 0 turns it off."""

    name: str
    path: str
    queue: str
    setting: str
    per: int = 1  # runs this many times per the setting's seconds


CONFIGURED: tuple[Configured, ...] = (
    Configured("verify", VERIFY_SAMPLE, MAINTENANCE_QUEUE, "VERIFY_INTERVAL_SECONDS"),
    Configured("forget-seen-events", FORGET_SEEN_EVENTS, MAINTENANCE_QUEUE,
               "SEEN_EVENTS_PRUNE_INTERVAL_SECONDS"),
    Configured("trim", TRIM, MAINTENANCE_QUEUE, "TRIM_INTERVAL_SECONDS"),
    # An MP unread for MP_IDLE_SECONDS goes within 1/24 more (plus the minute reads are kept to).
    Configured("drop-idle", DROP_IDLE, MAINTENANCE_QUEUE, "MP_IDLE_SECONDS", per=24),
)


def table(config: Any) -> tuple[Periodic, ...]:
    """PERIODIC plus every CONFIGURED job that `config` turns on, at its configured interval."""
    seconds = {job.name: int(getattr(config, job.setting)) for job in CONFIGURED}
    return PERIODIC + tuple(Periodic(job.name, job.path, job.queue,
                                     max(1, seconds[job.name] // job.per))
                            for job in CONFIGURED if seconds[job.name] > 0)


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


def run(queue_redis: redis.Redis, interval: int, job_timeout: int, stop: threading.Event,
        jobs: tuple[Periodic, ...] = PERIODIC, clock: Clock = utc_now) -> None:
    """Tick until `stop` is set; slots follow `clock` (the app's, so an injected clock moves
    them), the pause between ticks the wall clock."""
    while not stop.is_set():
        tick(queue_redis, clock().timestamp(), interval, job_timeout, jobs)
        stop.wait(interval)


def main() -> int:
    app = create_app()
    svc = app.extensions["tally"]
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("scheduler: signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    interval = int(svc.config.SCHEDULE_INTERVAL)
    jobs = table(svc.config)
    log.info("scheduler: ticks every %ds: %s", interval,
             ", ".join(f"{p.name} every {p.every or interval}s" for p in jobs))
    run(svc.queue_redis, interval, int(svc.config.JOB_TIMEOUT), stop, jobs, svc.clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
