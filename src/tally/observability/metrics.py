"""Prometheus metrics: what each web process counts live, and what every scrape reads fresh.

Live (per process, summed over gunicorn's workers through prometheus-client's multiprocess mode
when PROMETHEUS_MULTIPROC_DIR is set, as config/gunicorn.conf.py does): requests and latency per
route, count reads by source (warm `cache` vs cold `recomputed` vs `sql`), open SSE streams.
Shared figures are read at scrape time, so any process answers them alike; the caller of
`exposition` passes them (tally.services.figures: outbox backlog, events applied, drift found,
failed jobs), so this module reads no store.

A request touches no prometheus-client object: `Pending.observe` adds it to plain per-process
sums under one lock, and `fold` moves those into REQUESTS, LATENCY and COUNT_READS (one
multiprocess file write per series, not per request) every METRICS_FOLD_SECONDS from a thread of
each process, before this process renders /metrics, and at worker exit. Labels are bounded: the
route template or "unmatched", one of METHODS or "OTHER", the integer status.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from typing import Any, Callable, Iterable

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
                               multiprocess)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("tally.observability.metrics")

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
SSE_REFUSED = Counter("tally_sse_refused", "Streams refused at a bound, by reason (process)",
                      ["reason"], registry=LIVE)
SSE_REPLACED = Counter("tally_sse_replaced",
                       "Streams ended to make room for a newer stream of the same user",
                       registry=LIVE)
SSE_EVENTS = Counter("tally_sse_events", "count events sent on streams", registry=LIVE)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"  # every other method shares one label: a made-up one adds no series
_BOUNDS = (*map(float, LATENCY_BUCKETS), float("inf"))  # LATENCY's buckets, +Inf last


class Pending:
    """One process's requests, latencies and count reads not yet folded into the metrics.

    `observe` is the only per-request call: dict updates under one lock. `fold` swaps the sums
    out and adds them to REQUESTS, LATENCY and COUNT_READS; a second lock makes a fold wait for
    one in progress, so what a process renders right after its own fold includes everything it
    answered before. The fold thread starts with the first request of each process (after
    gunicorn's fork: a child starts over with empty sums and no thread)."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._lock = threading.Lock()
        self._folding = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # Emptied by every fold; their keys, like the prometheus label sets they feed, are
        # finite: route templates (or "unmatched"), METHODS (or OTHER_METHOD), the statuses
        # the app answers with, COUNT_ROUTES and X-Count-Source's values.
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # bucket counts…, then the sum
        self._reads: dict[tuple[str, str], int] = {}
        self.thread: threading.Thread | None = None
        self.pid: int | None = None

    def forked(self) -> None:
        """In a child process: new locks (a parent thread may have held one), nothing pending."""
        self._lock = threading.Lock()
        self._folding = threading.Lock()
        self._reset()

    def observe(self, route: str, method: str, status: int, seconds: float,
                source: str | None = None) -> None:
        """Count one answered request: `route` a template or "unmatched", `seconds` until its
        response started, `source` its X-Count-Source header (counted on COUNT_ROUTES only)."""
        if method not in METHODS:
            method = OTHER_METHOD
        bucket = bisect_left(_BOUNDS, seconds)
        endpoint = COUNT_ROUTES.get(route) if source else None
        with self._lock:
            if self.thread is None:
                self._start()
            key = (route, method, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            sums = self._latency.get((route, method))
            if sums is None:
                sums = self._latency[(route, method)] = [0] * len(_BOUNDS) + [0.0]
            sums[bucket] += 1
            sums[-1] += seconds
            if endpoint is not None:
                read = (endpoint, source)
                self._reads[read] = self._reads.get(read, 0) + 1

    def fold(self) -> None:
        """Add everything observed so far to the prometheus-client metrics."""
        with self._folding:
            with self._lock:
                requests, latency, reads = self._requests, self._latency, self._reads
                self._requests, self._latency, self._reads = {}, {}, {}
            for (route, method, status), count in requests.items():
                REQUESTS.labels(route, method, str(status)).inc(count)
            for (route, method), sums in latency.items():
                _add_to_histogram(LATENCY.labels(route, method), sums)
            for (endpoint, source), count in reads.items():
                COUNT_READS.labels(endpoint, source).inc(count)

    def _start(self) -> None:  # under self._lock
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="tally-metrics-fold", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.fold()
            except Exception as error:  # a metric is never worth a dead fold thread
                log.warning("metrics fold failed: %s", type(error).__name__)


def _add_to_histogram(child: Histogram, sums: list[float]) -> None:
    """Add per-bucket counts (not cumulative, +Inf last) and their sum to one labelled histogram.

    prometheus-client has no public call for many observations at once; this writes the values
    observe() writes (Histogram._buckets, _sum; checked against observe() by tests/test_metrics)."""
    for index, count in enumerate(sums[:-1]):
        if count:
            child._buckets[index].inc(count)
    child._sum.inc(sums[-1])


# The process's pending sums: module-level like the metrics they feed (one per process).
PENDING = Pending()
os.register_at_fork(after_in_child=PENDING.forked)


def fold() -> None:
    """Fold this process's pending sums into the metrics now (before a scrape, at worker exit)."""
    PENDING.fold()


class _Scraped:
    """A collector whose metric families a callable yields at each scrape."""

    def __init__(self, figures: Callable[[], Iterable[Any]]):
        self.figures = figures

    def collect(self) -> Iterable[Any]:
        return self.figures()


def live_registry() -> CollectorRegistry:
    """This process's live metrics, or every gunicorn worker's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return LIVE


def exposition(shared_figures: Callable[[], Iterable[Any]]) -> bytes:
    """The text a scrape of /metrics answers: live metrics, then the metric families
    `shared_figures` yields (read now)."""
    fold()  # this process's own requests up to now, whatever the fold thread's timing
    shared = CollectorRegistry(auto_describe=False)
    shared.register(_Scraped(shared_figures))
    return generate_latest(live_registry()) + generate_latest(shared)
