"""Prometheus metrics: what each web process counts live, and what every scrape reads fresh.

Live (per process, summed over gunicorn's workers through prometheus-client's multiprocess mode
when PROMETHEUS_MULTIPROC_DIR is set, as config/gunicorn.conf.py does): requests and latency per
route, count reads by source (warm `cache` vs cold `recomputed` vs `sql`), open SSE streams.
Shared figures are read at scrape time, so any process answers them alike: the outbox backlog
and the age of its oldest row (SQL), events applied and drift found (counters the workers keep in
the queue Redis), and failed jobs (RQ's failed-job registries).
"""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Iterator

import redis
from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tally.stores import keys

if TYPE_CHECKING:
    from tally.extensions import Services

log = logging.getLogger("tally.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Count endpoints whose X-Count-Source header tells a warm read from a cold recompute.
COUNT_ROUTES = {"/api/v2/ticketing/ticket/notification/count": "notification",
                "/api/v2/ticketing/ticket/notification/read": "notification",
                "/api/v2/ticketing/ticket/count": "ticket"}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# The live metrics live in their own registry (not the global one), so /metrics shows exactly
# tally's figures and a test run can build many apps without "duplicated timeseries" errors.
LIVE = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("tally_http_requests", "HTTP requests answered, by route template, method and "
                   "status", ["route", "method", "status"], registry=LIVE)
LATENCY = Histogram("tally_http_request_duration_seconds", "Time until the response started, by "
                    "route template and method", ["route", "method"], buckets=LATENCY_BUCKETS,
                    registry=LIVE)
COUNT_READS = Counter("tally_count_reads", "Count answers by endpoint and source: cache (warm), "
                      "recomputed (cold, rebuilt from SQL), sql (counter store down)",
                      ["endpoint", "source"], registry=LIVE)
SSE_CONNECTIONS = Gauge("tally_sse_connections", "Open notification streams",
                        multiprocess_mode="livesum", registry=LIVE)
SSE_REFUSED = Counter("tally_sse_refused", "Streams refused at a bound, by reason (process, user)",
                      ["reason"], registry=LIVE)
SSE_EVENTS = Counter("tally_sse_events", "count events sent on streams", registry=LIVE)


def install(app: Flask) -> None:
    """Count every request by route template (unmatched paths share one label)."""

    def record(response: Response) -> Response:
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        source = response.headers.get("X-Count-Source")
        if source and route in COUNT_ROUTES:
            COUNT_READS.labels(COUNT_ROUTES[route], source).inc()
        return response

    app.after_request(record)


def record_events_applied(queue_redis: redis.Redis, applied: int) -> None:
    """Add to the events-applied total in the queue Redis; best effort (a metric, not a count)."""
    if applied <= 0:
        return
    try:
        queue_redis.incrby(keys.EVENTS_APPLIED_KEY, applied)
    except redis.RedisError as error:
        log.debug("events applied not recorded: %s", error)


class SharedFigures:
    """A collector reading, at scrape time, the figures no single web process holds."""

    def __init__(self, services: "Services"):
        self.services = services

    def collect(self) -> Iterator[Any]:
        yield from self._outbox()
        yield from self._queue()

    def _outbox(self) -> Iterator[Any]:
        from tally.events.outbox import backlog

        try:
            pending, oldest_ms = backlog(self.services.db)
        except Exception as error:  # a scrape must answer even when the database does not
            log.warning("metrics: outbox backlog unavailable: %s", type(error).__name__)
            return
        yield GaugeMetricFamily("tally_outbox_backlog", "Outbox rows not yet applied to the "
                                "counters (every tenant)", value=pending)
        yield GaugeMetricFamily("tally_outbox_oldest_age_seconds", "Age of the oldest outbox row "
                                "not yet applied (0 when none)", value=oldest_ms / 1000)

    def _queue(self) -> Iterator[Any]:
        from rq.registry import FailedJobRegistry

        from tally.jobs import QUEUES

        queue_redis = self.services.queue_redis
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


def live_registry() -> CollectorRegistry:
    """This process's live metrics, or every gunicorn worker's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return LIVE


def exposition(services: "Services") -> bytes:
    """The text a scrape of /metrics answers: live metrics, then the shared figures."""
    shared = CollectorRegistry(auto_describe=False)
    shared.register(SharedFigures(services))
    return generate_latest(live_registry()) + generate_latest(shared)
