"""The web process as the Procfile runs it: the edge (Caddy) in front of gunicorn (issue 17).

Slow clients hold no gunicorn thread; streams pass through and a client that leaves frees its
slot at once; a user's reconnect is never refused because of their own streams; errors raised
before the app answer in the contract's envelope; the launcher is one process tree.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import sys
import time
from pathlib import Path

import pytest
import requests

from tally.edge import web_command
from tally.services import outbox
from tests.support.slow_clients import SlowClients
from tests.support.sse import SocketStream
from tests.support.web import (COUNT, STREAM, Gunicorn, call_headers, open_stream, post_created,
                               scrape, web_world)
from tests.support import processes as procs

pytestmark = pytest.mark.slow

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MAX_BODY = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory, sqlite_template, realms_file, var_dir):
    """The edge in front of one gunicorn worker of 2 poll threads and 4 stream threads: six
    threads, which 300 slow clients would all hold if they reached gunicorn."""
    with web_world(tmp_path_factory.mktemp("edge"), sqlite_template, realms_file, var_dir,
                   edge=True, worker=False, WEB_CONCURRENCY="1", GUNICORN_THREADS="2",
                   TALLY_STREAMS_PER_PROCESS="4", TALLY_STREAMS_PER_USER="1") as world:
        yield world


def open_streams(world) -> float:
    return scrape(world).get("tally_sse_connections", 0)


# -- slow clients (item 1) ---------------------------------------------------------------------
def test_polls_answer_while_hundreds_of_slow_clients_hold_connections(world):
    url = world["web"].url + COUNT
    poll_headers = call_headers(world, "poller", accept="application/json")
    assert requests.get(url, headers=poll_headers, timeout=30).status_code == 200  # warm
    # Given 200 clients sending a header line a second and 100 sending a body a byte a second
    with SlowClients(world["web"].port, headers=200, bodies=100, interval=1.0) as slow:
        # When badge polls arrive
        answers, seconds = [], []
        for _ in range(20):
            started = time.monotonic()
            answers.append(requests.get(url, headers=poll_headers, timeout=10))
            seconds.append(time.monotonic() - started)
        held = slow.still_open()
    # Then every poll is answered while every slow client is still connected (straight to
    # gunicorn, none was: each of its six threads was waiting on a slow client)
    assert [a.status_code for a in answers] == [200] * 20
    assert {a.json()["data"]["unread"] for a in answers} == {4}
    assert held == 300
    print(f"\npolls with 300 slow clients open: median {statistics.median(seconds) * 1000:.0f} "
          f"ms, slowest {max(seconds) * 1000:.0f} ms")


# -- streams through the edge (items 1 and 2) ----------------------------------------------------
def test_a_stream_passes_each_event_through_the_edge(world):
    stream = open_stream(world, "watcher")
    try:
        first = stream.next_count()
        assert stream.headers["content-type"].startswith("text/event-stream")
        post_created(world, "watcher")
        outbox.apply_pending(world["services"], world["tenant"])
        assert stream.next_count().json["unread"] == first.json["unread"] + 1
    finally:
        stream.close()


def test_clients_that_connect_and_drop_leave_no_stream_behind(world):
    # Given clients that open a stream and go away, more of them than the worker has slots
    for n in range(12):
        stream = open_stream(world, f"dropper-{n}")
        stream.next_count()
        stream.close()
    # Then their streams end as they leave, long before a heartbeat (15 s) could notice
    procs.wait_until(lambda: open_streams(world) == 0, 10, "the dropped streams to end",
                     world["web"].log)
    # And a new user streams at once
    stream = SocketStream(world["web"].port, STREAM,
                          call_headers(world, "newcomer", accept="text/event-stream"))
    try:
        assert stream.status == 200 and stream.next_count().json["unread"] == 0
    finally:
        stream.close()


def test_a_reconnect_replaces_the_users_stream_that_nobody_closed(world):
    # Given a user's stream whose client went quiet without closing (a reloaded tab behind a
    # proxy that keeps the connection, a laptop that vanished), at the bound of one per user
    call = call_headers(world, "reloader", accept="text/event-stream")
    old = SocketStream(world["web"].port, STREAM, call)
    assert old.status == 200 and old.next_count()
    # When the user connects again
    new = SocketStream(world["web"].port, STREAM, call)
    try:
        # Then the new stream is served and the old one is ended by the server
        assert new.status == 200 and new.next_count().json["unread"] == 0
        with pytest.raises(EOFError):
            old.next_count(timeout=30)
    finally:
        old.close()
        new.close()


# -- errors raised before the app (item 5) -------------------------------------------------------
def exchange(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], dict]:
    """Send a raw request; the status, headers and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head.encode() + body)
        except OSError:  # the edge answered and closed before taking the whole body
            pass
        raw = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
            if b"\r\n\r\n" in raw:
                head_bytes, rest = raw.split(b"\r\n\r\n", 1)
                length = re.search(rb"(?i)content-length: *(\d+)", head_bytes)
                if length and len(rest) >= int(length.group(1)):
                    break
    head_bytes, rest = raw.split(b"\r\n\r\n", 1)
    status_line, *lines = head_bytes.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return int(status_line.split()[1]), headers, json.loads(rest)


def envelope(answer: tuple[int, dict[str, str], dict], status: int, code: str) -> dict:
    got, headers, body = answer
    assert (got, headers["content-type"]) == (status, "application/json"), answer
    assert body["success"] is False and body["error"]["code"] == code
    assert body["error"]["message"] and "details" in body["error"]
    assert TIMESTAMP.match(body["timestamp"])
    return body


def test_a_very_long_url_is_a_414_envelope(world):
    head = (f"GET {COUNT}?view={'a' * 5000} HTTP/1.1\r\nHost: x\r\n"
            f"X-Request-ID: long-url-1\r\n\r\n")
    answer = exchange(world["web"].port, head)
    envelope(answer, 414, "URI_TOO_LONG")
    assert answer[1]["x-request-id"] == "long-url-1"


def test_oversized_headers_are_a_431_envelope(world):
    big = f"GET {COUNT} HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 100_000}\r\n\r\n"
    envelope(exchange(world["web"].port, big), 431, "HEADERS_TOO_LARGE")
    many = "".join(f"X-Many-{n}: 1\r\n" for n in range(150))
    answer = exchange(world["web"].port, f"GET {COUNT} HTTP/1.1\r\nHost: x\r\n{many}\r\n")
    envelope(answer, 431, "HEADERS_TOO_LARGE")
    assert answer[1]["x-request-id"]  # a new one: the client sent none


def test_a_double_slash_in_the_path_is_an_envelope(world):
    auth = "".join(f"{k}: {v}\r\n" for k, v in call_headers(world, "poller").items())
    for path in (COUNT.replace("/ticket/", "//ticket/"), COUNT.replace("/v2/", "/v2//")):
        envelope(exchange(world["web"].port, f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n"),
                 404, "NOT_FOUND")


def test_a_body_over_the_limit_is_a_413_envelope(world):
    # (The edge stops reading at the limit; the app may answer first, in the same envelope.)
    service = call_headers(world, "svc", ("ticket_service",), **{"Content-Type":
                                                                 "application/json"})
    post = "POST /api/v2/ticketing/events HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in service.items())
    over = b"x" * (MAX_BODY + 100)
    body = envelope(exchange(world["web"].port, f"{post}Content-Length: {len(over)}\r\n\r\n",
                             over), 413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"] == {"maxBytes": MAX_BODY}
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(over), over)
    envelope(exchange(world["web"].port, f"{post}Transfer-Encoding: chunked\r\n\r\n", chunked),
             413, "PAYLOAD_TOO_LARGE")


# -- the launcher: one process tree --------------------------------------------------------------
def app_server(web: Gunicorn) -> int:
    """The pid of gunicorn's master: the launcher's child that is not caddy."""
    for pid in web.pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == web.process.pid and b"gunicorn" in b" ".join(cmdline):
            return pid
    raise AssertionError("no gunicorn master under the launcher")


def test_the_launcher_stops_caddy_when_gunicorn_dies_and_both_on_sigterm(world, tmp_path):
    # Given a second web process as the Procfile runs it
    env = {k: v for k, v in world["web"].env.items() if k != "PORT"}
    web = Gunicorn(env, tmp_path / "web.log", edge=True).start()
    try:
        # When its gunicorn dies, the launcher exits and takes Caddy with it
        os.kill(app_server(web), signal.SIGKILL)
        assert web.process.wait(60) != 0
        procs.wait_until(lambda: web.pids() == [], 30, "caddy to stop", web.log)
    finally:
        web.stop()
    # Given another one, when the launcher alone gets SIGTERM, everything stops cleanly
    web = Gunicorn(env, tmp_path / "web2.log", edge=True).start()
    try:
        web.process.send_signal(signal.SIGTERM)
        assert web.process.wait(60) == 0
        procs.wait_until(lambda: web.pids() == [], 30, "gunicorn and caddy to stop", web.log)
    finally:
        web.stop()


def test_make_run_the_tests_and_the_bench_start_the_procfiles_web_line():
    procfile = (procs.ROOT / "Procfile").read_text().splitlines()
    line = next(entry for entry in procfile if entry.startswith("web:")).split()[1:]
    started = " ".join(web_command()).replace(f"{sys.executable} -m gunicorn", "gunicorn")
    assert started.replace(sys.executable, "python").split() == line
