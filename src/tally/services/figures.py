"""The figures /metrics reads at scrape time because no single web process holds them: the
outbox backlog and its oldest row's age (SQL), events applied and drift found (counters the
workers keep in the queue Redis), and failed jobs (RQ's failed-job registries)."""
from __future__ import annotations

import logging
from typing import Any, Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from rq.registry import FailedJobRegistry

from tally.core.clock import epoch_ms
from tally.jobs import QUEUES
from tally.services.container import Services
from tally.services.outbox import backlog
from tally.stores import keys

log = logging.getLogger("tally.observability.metrics")  # where a scrape's troubles are logged


def shared_figures(services: Services) -> Iterator[Any]:
    """The metric families of the shared figures; a store that is down leaves its out."""
    yield from _outbox(services)
    yield from _queue(services)


def record_drift(services: Services, drifted: int) -> None:
    """Add drifted counter groups found by the sampling verify to the drift-found total."""
    services.queue_redis.incrby(keys.DRIFT_FOUND_KEY, drifted)


def _outbox(services: Services) -> Iterator[Any]:
    try:
        pending, oldest_ms = backlog(services.db, epoch_ms(services.clock()))
    except Exception as error:  # a scrape must answer even when the database does not
        log.warning("metrics: outbox backlog unavailable: %s", type(error).__name__)
        return
    yield GaugeMetricFamily("tally_outbox_backlog", "Outbox rows not yet applied to the "
                            "counters (every tenant)", value=pending)
    yield GaugeMetricFamily("tally_outbox_oldest_age_seconds", "Age of the oldest outbox row "
                            "not yet applied (0 when none)", value=oldest_ms / 1000)


def _queue(services: Services) -> Iterator[Any]:
    queue_redis = services.queue_redis
    try:
        applied, drift = queue_redis.mget(keys.EVENTS_APPLIED_KEY, keys.DRIFT_FOUND_KEY)
        failed = {name: FailedJobRegistry(name, connection=queue_redis).count
                  for name in QUEUES}
    except redis.RedisError as error:
        log.warning("metrics: queue Redis unavailable: %s", type(error).__name__)
        return
    yield CounterMetricFamily("tally_events_applied", "Outbox rows applied to the counters "
                              "(first application only)", value=int(applied or 0))
    yield CounterMetricFamily("tally_verify_drift_found", "Drifted counter groups found by "
                              "the scheduled sampling verify", value=int(drift or 0))
    jobs = GaugeMetricFamily("tally_jobs_failed", "Jobs in RQ's failed-job registry (kept "
                             "for tally.jobs.FAILURE_TTL), by queue", labels=["queue"])
    for name, count in failed.items():
        jobs.add_metric([name], count)
    yield jobs
