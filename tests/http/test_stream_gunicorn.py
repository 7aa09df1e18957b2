"""Streams on the real `web` process: gunicorn with config/gunicorn.conf.py, a real worker.

300 idle streams on one instance must leave polls answering; a stream gets a change within a
second of its `notification.created` event and resumes after a reconnect without missing one;
/metrics sums the workers (each folds its own requests in); every log line is JSON and holds no
token.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tally.services import outbox
from tests.support.sse import SocketStream
from tests.support.web import (COUNT, STREAM, call_headers, open_stream, post_created, scrape,
                               web_world)
from tests.support import processes as procs

pytestmark = pytest.mark.slow

IDLE_STREAMS = 300
POLLS = 60


@pytest.fixture(scope="module")
def world(tmp_path_factory, sqlite_template, realms_file, var_dir):
    """gunicorn (2 workers) and an RQ worker on their own Redis and SQLite file."""
    with web_world(tmp_path_factory.mktemp("web"), sqlite_template, realms_file, var_dir,
                   WEB_CONCURRENCY="2", TALLY_LOG_SAMPLE_RATE="1") as world:  # every access line
        yield world


def test_300_idle_streams_leave_polls_answering_on_one_instance(world):
    # Given 300 open, idle streams (one per user) on two gunicorn workers
    streams: list[SocketStream] = []

    def open_idle(n: int) -> SocketStream:
        stream = open_stream(world, f"idle-{n:03d}")
        streams.append(stream)
        assert stream.next_count().json["unread"] == 0
        return stream

    try:
        with ThreadPoolExecutor(8) as pool:
            streams[:] = list(pool.map(open_idle, range(IDLE_STREAMS)))
        assert scrape(world)["tally_sse_connections"] == IDLE_STREAMS
        print(f"\n{IDLE_STREAMS} streams open; gunicorn RSS {world['web'].rss_kib() // 1024} MiB")
        # When 60 polls arrive, six at a time
        poll_headers = call_headers(world, "poller", accept="application/json")

        def poll(_: int) -> requests.Response:
            return requests.get(f"{world['web'].url}{COUNT}", headers=poll_headers, timeout=60)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(poll, range(POLLS)))
        # Then every poll answers with the right counts
        assert [a.status_code for a in answers] == [200] * POLLS
        assert {(a.json()["data"]["unread"], a.json()["data"]["total"]) for a in answers} == \
            {(4, 6)}
        # And the idle streams are alive: a change for three of their users reaches them
        services = world["services"]
        for n in (0, 150, 299):
            post_created(world, f"idle-{n:03d}")
        outbox.apply_pending(services, world["tenant"])  # whichever of us applies first
        for n in (0, 150, 299):
            assert streams[n].next_count().json["unread"] == 1
    finally:
        for stream in streams:
            stream.close()


def test_a_stream_gets_a_created_notification_within_a_second_and_resumes(world):
    # Given a stream showing the user's counts
    stream = open_stream(world, "watcher")
    first = stream.next_count()
    # When a notification.created event is accepted (the real worker applies it)
    started = time.monotonic()
    post_created(world, "watcher")
    pushed = stream.next_count(timeout=30)
    elapsed = time.monotonic() - started
    # Then the stream has the new count within a second (the bound)
    print(f"\nevent accepted → stream update: {elapsed * 1000:.0f} ms")
    assert pushed.json["unread"] == first.json["unread"] + 1
    assert elapsed < 1.0
    # When the client drops, a change happens, and it reconnects with Last-Event-ID
    stream.close()
    post_created(world, "watcher")
    count_headers = call_headers(world, "watcher", accept="application/json")
    procs.wait_until(lambda: requests.get(f"{world['web'].url}{COUNT}", headers=count_headers,
                                          timeout=30).json()["data"]["unread"] == 2, 30,
                     "the worker to apply the second event", world["worker_log"])
    resumed = open_stream(world, "watcher", **{"Last-Event-ID": pushed.id})
    try:
        # Then the missed change is the first thing it receives
        missed = resumed.next_count()
        assert missed.json["unread"] == 2 and missed.id != pushed.id
    finally:
        resumed.close()


def test_metrics_sum_what_every_worker_folds_in(world):
    # Given requests no other test makes (HEAD /healthz), answered by either worker
    for _ in range(20):
        assert requests.head(f"{world['web'].url}/healthz", timeout=30).status_code == 200

    def heads(name: str) -> float:
        text = requests.get(f"{world['web'].url}/metrics", timeout=30).text
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name == name
                   and sample.labels.get("route") == "/healthz"
                   and sample.labels.get("method") == "HEAD")

    # Then within the fold interval /metrics counts each of them once, latency included
    procs.wait_until(lambda: heads("tally_http_requests_total") == 20, 30,
                     "both workers' folds", world["web"].log)
    assert heads("tally_http_request_duration_seconds_count") == 20


def test_every_log_line_is_json_without_tokens(world):
    requests.get(f"{world['web'].url}{COUNT}", headers=call_headers(world, "poller"), timeout=30)
    token = call_headers(world, "poller")["Authorization"].split()[1]
    web_lines = [line for line in world["web"].log.read_text().splitlines() if line.strip()]
    worker_lines = [line for line in world["worker_log"].read_text().splitlines()
                    if line.strip()]
    parsed = [json.loads(line) for line in web_lines + worker_lines]
    routes = {entry.get("route") for entry in parsed if entry["logger"] == "tally.http.request"}
    assert COUNT in routes and STREAM in routes
    assert any(entry["logger"].startswith("gunicorn") for entry in parsed)
    assert any(entry["logger"].startswith(("rq", "tally.workers")) for entry in parsed)
    text = "\n".join(web_lines + worker_lines)
    assert token.split(".")[1] not in text and "Bearer" not in text.replace("Bearer [", "")
