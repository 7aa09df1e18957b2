"""GET /metrics: Prometheus text with every figure the operations page lists."""
from __future__ import annotations

import multiprocessing
import os
import uuid

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from tally import jobs

from tally.observability import metrics
from tally.services import outbox
from tally.stores import keys
from tests.support import factories
from tests.support.factories import MIX

PREFIX = "/api/v2/ticketing"
COUNT_ROUTE = f"{PREFIX}/ticket/notification/count"
NOW = "2025-07-10T12:00:00.000Z"


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def failing_job() -> None:
    raise RuntimeError("this job fails on purpose")


@pytest.fixture
def seeded(services, tenant_id):
    factories.notifications(services.db, tenant_id, "user-1", MIX)
    return tenant_id


def test_requests_latency_and_warm_versus_cold_reads_are_counted(client, headers, seeded):
    before = scrape(client)
    assert client.get(f"{PREFIX}/ticket/notification/count", headers=headers()).headers[
        "X-Count-Source"] == "recomputed"
    assert client.get(f"{PREFIX}/ticket/notification/count", headers=headers()).headers[
        "X-Count-Source"] == "cache"
    client.get("/no/such/path")
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tally_http_requests_total", route=COUNT_ROUTE, method="GET", status="200") == 2
    assert grew("tally_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert grew("tally_http_request_duration_seconds_count", route=COUNT_ROUTE, method="GET") == 2
    assert grew("tally_http_request_duration_seconds_bucket", route=COUNT_ROUTE, method="GET",
                le="+Inf") == 2
    assert grew("tally_count_reads_total", endpoint="notification", source="recomputed") == 1
    assert grew("tally_count_reads_total", endpoint="notification", source="cache") == 1


def test_outbox_backlog_and_events_applied_come_from_sql_and_the_queue_redis(
        client, headers, services, seeded):
    # Given accepted events for three users, not yet applied (one outbox row per user's group)
    call = {**headers("svc", roles=("ticket_service",)), "content-type": "application/json"}
    events = [{"eventId": str(uuid.uuid4()), "type": "notification.created", "occurredAt": NOW,
               "data": {"id": f"n-metrics-{n}", "userId": f"user-{n}", "type": "comment",
                        "ticketId": "T-1", "priority": "low", "createdAt": NOW}}
              for n in range(3)]
    assert client.post(f"{PREFIX}/events", json={"events": events}, headers=call).status_code \
        == 202
    rows, _ = outbox.backlog(services.db)
    pending = scrape(client)
    assert value(pending, "tally_outbox_backlog") == rows == 3
    assert value(pending, "tally_outbox_oldest_age_seconds") >= 0
    # When a worker applies them
    outbox.apply_pending(services, seeded)
    applied = scrape(client)
    # Then the backlog is empty and the applied total grew by as many rows
    assert value(applied, "tally_outbox_backlog") == 0
    assert value(applied, "tally_outbox_oldest_age_seconds") == 0
    assert value(applied, "tally_events_applied_total") - \
        value(pending, "tally_events_applied_total") == rows


def test_failed_jobs_and_drift_found_are_read_from_the_queue_redis(client, services):
    services.queue_redis.incrby(keys.DRIFT_FOUND_KEY, 3)
    queue = Queue(jobs.APPLY_QUEUE, connection=services.queue_redis)
    job = queue.enqueue(failing_job)
    from rq import SimpleWorker

    SimpleWorker([queue], connection=services.queue_redis).work(burst=True)
    assert job.get_status() == "failed"
    samples = scrape(client)
    assert value(samples, "tally_verify_drift_found_total") == 3
    assert value(samples, "tally_jobs_failed", queue=jobs.APPLY_QUEUE) == 1
    assert value(samples, "tally_jobs_failed", queue=jobs.MAINTENANCE_QUEUE) == 0


def test_open_streams_are_a_gauge(make_app, headers, seeded):
    client = make_app(STREAM_HEARTBEAT_SECONDS=0.2).test_client()
    before = value(scrape(client), "tally_sse_connections")
    stream = client.get(f"{PREFIX}/ticket/notification/stream",
                        headers={**headers(), "accept": "text/event-stream"}, buffered=False)
    assert value(scrape(client), "tally_sse_connections") == before + 1
    stream.close()
    assert value(scrape(client), "tally_sse_connections") == before


def test_a_scrape_answers_with_the_database_down(make_app):
    client = make_app(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none").test_client()
    samples = scrape(client)
    assert ("tally_outbox_backlog", ()) not in samples
    assert ("tally_events_applied_total", ()) in samples


# -- per-process sums, folded ----------------------------------------------------------------------

def test_made_up_methods_add_no_series_beyond_other(client):
    before = scrape(client)
    for n in range(40):
        client.open("/healthz" if n % 2 else "/no/such/path", method=f"MADEUP{n}")
    after = scrape(client)
    added = {labels for name, labels in set(after) - set(before)
             if name.startswith("tally_http_")}
    assert all(dict(labels)["method"] == "OTHER" for labels in added)
    assert {dict(labels)["method"] for name, labels in after if name.startswith("tally_http_")} \
        <= metrics.METHODS | {"OTHER"}

    def grew(status: str) -> float:
        labels = dict(route="unmatched", method="OTHER", status=status)
        return value(after, "tally_http_requests_total", **labels) - \
            value(before, "tally_http_requests_total", **labels)

    assert (grew("405"), grew("404")) == (20, 20)


def test_folded_latencies_read_as_observe_would_have_written_them():
    # Given the same latencies observed one by one into a reference histogram
    seconds = [0.0004, 0.001, 0.0011, 0.003, 0.2, 0.25, 2.0, 10.0, 11.5, 0.001]
    reference = CollectorRegistry()
    alike = Histogram("alike", "h", ["route", "method"], buckets=metrics.LATENCY_BUCKETS,
                      registry=reference).labels("r", "GET")
    for amount in seconds:
        alike.observe(amount)
    # When they are folded from a process's sums
    route = f"/fold-test/{uuid.uuid4().hex}"
    pending = metrics.Pending(interval=3600)
    for amount in seconds:
        pending.observe(route, "GET", 200, amount)
    pending.fold()

    # Then every bucket, the count and the sum read alike
    def samples(registry, name: str, labels: dict) -> dict:
        return {(s.name.removeprefix(name), s.labels.get("le")): s.value
                for family in registry.collect() for s in family.samples
                if s.name.startswith(name) and not s.name.endswith("_created")
                and all(s.labels.get(k) == v for k, v in labels.items())}

    folded = samples(metrics.LIVE, "tally_http_request_duration_seconds",
                     {"route": route, "method": "GET"})
    assert folded == samples(reference, "alike", {"route": "r"})
    assert folded[("_count", None)] == len(seconds)


def _child_of_a_fork(results) -> None:
    pending = metrics.PENDING
    inherited = pending.thread  # the parent's thread is not running here
    folded = metrics.LIVE.get_sample_value("tally_http_requests_total", FORK_LABELS)
    pending.fold()  # the parent's unfolded request is the parent's, not counted here too
    after = metrics.LIVE.get_sample_value("tally_http_requests_total", FORK_LABELS)
    pending.observe("/forked", "GET", 200, 0.001)
    results.send((inherited, folded, after, pending.pid, os.getpid(),
                  pending.thread is not None and pending.thread.is_alive()))


FORK_LABELS = {"route": "/before-fork", "method": "GET", "status": "200"}


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_each_process_starts_its_own_fold_thread_after_a_fork():
    # Given a process whose fold thread runs and which holds one request not yet folded
    metrics.PENDING.observe("/warm", "GET", 200, 0.001)
    assert metrics.PENDING.thread.is_alive() and metrics.PENDING.pid == os.getpid()
    metrics.PENDING.observe("/before-fork", "GET", 200, 0.001)
    # When it forks (as gunicorn forks its workers) and the child answers a request
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_child_of_a_fork, args=(child_end,))
    child.start()
    inherited, folded, after, child_pid, own_pid, running = parent_end.recv()
    child.join(30)
    # Then the child started with no thread and nothing pending, and runs a thread of its own
    assert inherited is None and folded is None and after is None
    assert running and child_pid == own_pid == child.pid != os.getpid()
    # And the parent still holds its own request
    metrics.fold()
    assert metrics.LIVE.get_sample_value("tally_http_requests_total", FORK_LABELS) >= 1


@pytest.mark.slow  # thousands of random requests
def test_every_label_stays_within_known_values_whatever_the_paths_methods_and_statuses(
        app, client, headers):
    """Issue 17 #4: a client choosing paths (404), methods on known routes (405), redirects and
    guard errors adds no series beyond route templates (or "unmatched"), METHODS (or OTHER) and
    the statuses the app answers; the second round of the same kinds adds none at all."""
    templates = {rule.rule for rule in app.url_map.iter_rules()} | {"unmatched"}

    def round_(n: int) -> None:
        for i in range(n):
            tag = uuid.uuid4().hex
            client.get(f"/no/such/{tag}")  # 404, a new path each time
            client.get(f"{PREFIX}/filters/{tag}/x", headers=headers())  # 404 under the prefix
            client.put(f"{PREFIX}/filters/{tag}", headers=headers())  # 405 on a template route
            client.delete(f"{PREFIX}/filters/{tag}", headers=headers())  # 404 from the view
            client.get(f"{PREFIX}/filters/", headers=headers())  # a redirect or a 404
            client.open(COUNT_ROUTE, method=f"X{tag[:8]}")  # a made-up method
            client.get(COUNT_ROUTE, headers={**headers(), "x-tenantid": tag})  # 400
            client.get(COUNT_ROUTE, headers={**headers(), "Authorization": f"Bearer {tag}"})

    def series(samples) -> set:
        return {labels for name, labels in samples if name.startswith("tally_")}

    scrape(client)  # the scrape's own series exist before the first one compared
    before = scrape(client)  # (other tests of this process add their own to the registry)
    round_(5)
    first = scrape(client)
    round_(20)
    assert series(scrape(client)) == series(first)
    for labels in map(dict, series(first) - series(before)):
        assert labels.get("route", "unmatched") in templates, labels
        assert labels.get("method", "GET") in metrics.METHODS | {"OTHER"}, labels
        assert labels.get("status", "200").isdigit() and len(labels.get("status", "200")) == 3
        assert labels.get("source", "cache") in ("cache", "recomputed", "sql"), labels
