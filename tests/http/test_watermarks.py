"""Read-your-writes over HTTP: POST /events answers a watermark, every count says which it reflects,
and a count sent with X-Min-Watermark reflects at least that write (docs/api-watermarks.md).

Real redis-server (or the suite's Redis Cluster: tests/cluster imports these tests), real worker
processes where a worker matters, SQLite and PostgreSQL. The property every answer must keep:
a count claiming watermark W includes every event the tenant was answered W or less for.
"""
from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from tally.core import watermarks as wire
from tally.core.filters import ALL
from tally.services import outbox
from tests.support import events as b
from tests.support import processes as procs
from tests.support.sse import BodyReader

pytestmark = [pytest.mark.both_databases, pytest.mark.slow]

PREFIX = "/api/v2/ticketing"
BADGE = f"{PREFIX}/ticket/notification/count"
TICKETS = f"{PREFIX}/ticket/count?type=template&module=ticketing"
STREAM = f"{PREFIX}/ticket/notification/stream"
SERVICE = ("ticket_service",)
ADMIN = ("ticket_admin",)
WAIT_MS = 100  # the app's bound: short, so the "from SQL" answers come quickly
DRAIN_DEADLINE_S = 120


@pytest.fixture
def app(make_app):
    return make_app(MIN_WATERMARK_WAIT_MS=WAIT_MS)


@pytest.fixture
def headers(headers):
    """The suite's headers, each (user, roles) minted once: these tests make hundreds of calls."""
    made: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}

    def build(user: str = "user-1", roles=("ticket_user",)) -> dict[str, str]:
        key = (user, tuple(roles))
        if key not in made:
            made[key] = headers(user, roles)
        return made[key]

    return build


@pytest.fixture
def env(db_url, counter_store, realms_file):
    return counter_store.process_env(db_url, realms_file)


@pytest.fixture
def worker(env, tmp_path):
    """Starts a real worker on demand; stopped (SIGTERM) at the end of the test."""
    started: list[Any] = []
    log = tmp_path / "worker.log"

    def start():
        process = procs.start("tally.workers.run", env, log=log)
        started.append(process)
        return process

    start.log = log
    yield start
    for process in started:
        procs.stop(process)


def post(client, headers, *events: dict[str, Any]) -> str:
    """Post events as the ticket service; the watermark it answered (body and header agree)."""
    response = client.post(b.EVENTS, json={"events": list(events)},
                           headers=headers("svc", roles=SERVICE))
    assert response.status_code == 202, response.get_json()
    watermark = response.get_json()["data"]["watermark"]
    assert response.headers["X-Count-Watermark"] == watermark
    return watermark


def badge(client, headers, user: str = "user-1", min_watermark: str | None = None):
    extra = {} if min_watermark is None else {"X-Min-Watermark": min_watermark}
    return client.get(BADGE, headers={**headers(user), **extra})


def tickets(client, headers, min_watermark: str | None = None):
    extra = {} if min_watermark is None else {"X-Min-Watermark": min_watermark}
    return client.post(TICKETS, json={"filterIds": [ALL]},
                       headers={**headers("admin-1", roles=ADMIN), **extra})


def unread(response) -> int:
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["unread"]


def position(tenant: str, watermark: str) -> int:
    return wire.decode(tenant, watermark)


def created(user: str = "user-1") -> dict[str, Any]:
    return b.created(f"n-{uuid.uuid4().hex[:12]}", user)


# -- the write's watermark ------------------------------------------------------------------------
def test_each_write_gets_a_higher_watermark_and_a_no_op_batch_the_current_one(
        client, headers, tenant_id):
    first = post(client, headers, created(), created())
    again = created()
    second = post(client, headers, again)
    duplicate = post(client, headers, again)  # a redelivery changes nothing
    assert position(tenant_id, first) >= 1
    assert position(tenant_id, second) == position(tenant_id, first) + 1
    assert duplicate == second
    assert first.endswith("." + wire.tag(tenant_id))


def test_every_count_answer_carries_the_watermark_it_reflects(client, headers, tenant_id):
    written = post(client, headers, created(), b.ticket("t-1", 1))
    cold = badge(client, headers)  # recomputed from SQL: claims every write it read
    assert cold.headers["X-Count-Source"] == "recomputed"
    assert position(tenant_id, cold.headers["X-Count-Watermark"]) >= position(tenant_id, written)
    counted = tickets(client, headers)
    assert counted.status_code == 200 and counted.get_json()["data"]["counts"][ALL] == 1
    assert position(tenant_id, counted.headers["X-Count-Watermark"]) >= position(tenant_id,
                                                                                 written)
    etag = cold.headers["ETag"]
    unchanged = client.get(BADGE, headers={**headers(), "If-None-Match": etag})
    assert unchanged.status_code == 304 and "X-Count-Watermark" in unchanged.headers


# -- X-Min-Watermark: the caller's own write, whoever applies it ----------------------------------
def test_with_the_worker_stopped_a_count_at_the_writes_watermark_comes_from_sql(
        client, headers, tenant_id):
    # Given warm counters (no worker runs)
    post(client, headers, created())
    assert unread(badge(client, headers)) == 1
    assert tickets(client, headers).get_json()["data"]["counts"][ALL] == 0
    warm = badge(client, headers)
    assert warm.headers["X-Count-Source"] == "cache"
    # When an event is accepted and its watermark sent back with the counts
    written = post(client, headers, created(), b.ticket("t-1", 1))
    # Then the plain warm count still shows the old number, and claims less than the write
    stale = badge(client, headers)
    assert unread(stale) == 1 and stale.headers["X-Count-Source"] == "cache"
    assert position(tenant_id, stale.headers["X-Count-Watermark"]) < position(tenant_id, written)
    # ... while the counts asked for it reflect it, from SQL once the bound passed
    fresh = badge(client, headers, min_watermark=written)
    assert unread(fresh) == 2 and fresh.headers["X-Count-Source"] == "sql"
    assert position(tenant_id, fresh.headers["X-Count-Watermark"]) >= position(tenant_id,
                                                                               written)
    counted = tickets(client, headers, min_watermark=written)
    assert counted.get_json()["data"]["counts"][ALL] == 1
    assert counted.headers["X-Count-Source"] == "sql"


def test_once_applied_the_count_at_the_watermark_comes_from_the_counters(
        client, headers, services, tenant_id):
    post(client, headers, created(), b.ticket("t-1", 1))
    outbox.apply_pending(services, tenant_id)
    assert unread(badge(client, headers)) == 1 and tickets(client, headers).status_code == 200
    written = post(client, headers, created(), b.ticket("t-2", 1))
    outbox.apply_pending(services, tenant_id)  # in a worker's place
    fresh = badge(client, headers, min_watermark=written)
    assert unread(fresh) == 2 and fresh.headers["X-Count-Source"] == "cache"
    counted = tickets(client, headers, min_watermark=written)
    assert counted.get_json()["data"]["counts"][ALL] == 2
    assert counted.headers["X-Count-Source"] == "cache"


def test_a_waiting_count_is_woken_by_a_real_worker_applying_the_write(
        client, headers, services, tenant_id, worker):
    # Given warm counters, a real worker, and a bound far longer than any apply
    services.config.MIN_WATERMARK_WAIT_MS = 60_000
    post(client, headers, created())
    assert unread(badge(client, headers)) == 1 and tickets(client, headers).status_code == 200
    worker()
    # When writes are posted and counted at once with their watermarks
    for number in range(2, 6):
        written = post(client, headers, created(), b.ticket(f"t-{number}", 1))
        fresh = badge(client, headers, min_watermark=written)
        counted = tickets(client, headers, min_watermark=written)
        # Then each answer reflects the write, from the counters the worker updated
        assert unread(fresh) == number and fresh.headers["X-Count-Source"] == "cache"
        assert counted.get_json()["data"]["counts"][ALL] == number - 1
        assert counted.headers["X-Count-Source"] == "cache"


def test_concurrent_writers_in_one_tenant_each_read_their_own_writes(
        app, client, headers, services, tenant_id, worker):
    users = [f"writer-{i}" for i in range(4)]
    for user in users:  # warm every badge
        assert unread(badge(client, headers, user)) == 0
    worker()
    failures: list[str] = []

    def write_and_read(user: str) -> None:
        own = app.test_client()
        try:
            for number in range(1, 6):
                written = post(own, headers, created(user))
                seen = unread(badge(own, headers, user, min_watermark=written))
                if seen != number:
                    failures.append(f"{user}: wrote {number}, read {seen}")
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(f"{user}: {error!r}")

    threads = [threading.Thread(target=write_and_read, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# -- faults: the watermark never overstates --------------------------------------------------------
def test_worker_sigkill_and_counter_flush_never_make_the_watermark_overstate(
        client, headers, services, tenant_id, worker, counter_store):
    """Every answer claiming W counts every event answered W or less (one user, creations only,
    so the count never goes down and "includes" is "at least")."""
    answered: list[int] = []  # the watermark of each posted creation
    observed: list[tuple[int, int]] = []  # (claimed watermark, unread) of every count

    def read() -> None:
        response = badge(client, headers)
        observed.append((position(tenant_id, response.headers["X-Count-Watermark"]),
                         unread(response)))

    def flush() -> None:
        """The counter store loses every key of the tenant, its watermark included (a cluster
        is flushed whole; the standalone server also holds RQ's queue, which must survive)."""
        if counter_store.cluster:
            counter_store.flush()
        else:
            services.counters.delete_tenant_keys(tenant_id)

    running = worker()
    read()
    for number in range(60):
        answered.append(position(tenant_id, post(client, headers, created())))
        read()
        if number == 15:
            procs.kill_session(running)  # mid-apply or between applies
            read()
            running = worker()
        if number == 30:
            flush()
            read()
        if number == 45:
            procs.kill_session(running)
            flush()
            read()
            running = worker()
    procs.wait_until(lambda: outbox.backlog(services.db)[0] == 0, DRAIN_DEADLINE_S,
                     "the outbox to drain", worker.log)
    # ... and the claim catches up with the last write once the worker has raised it
    procs.wait_until(lambda: read() or observed[-1][0] == answered[-1], DRAIN_DEADLINE_S,
                     "the watermark to reach the last write", worker.log)
    assert observed[-1] == (answered[-1], 60)
    for claimed, count in observed:
        assert count >= sum(1 for w in answered if w <= claimed), (claimed, count)


# -- bad watermarks --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["", "12", "abc.0123abcd", "-1.0123abcd", "1.XYZ", "1.0123abcd"])
def test_a_malformed_or_foreign_watermark_is_a_400(client, headers, tenant_id, bad):
    foreign = bad == "1.0123abcd"
    if foreign:
        bad = wire.encode(str(uuid.uuid4()), 1)  # another tenant's
    for response in (badge(client, headers, min_watermark=bad),
                     tickets(client, headers, min_watermark=bad)):
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and "X-Min-Watermark" in error["details"]


def test_a_watermark_never_issued_is_a_400(client, headers, tenant_id, services):
    written = post(client, headers, created())
    outbox.apply_pending(services, tenant_id)
    badge(client, headers)
    beyond = wire.encode(tenant_id, position(tenant_id, written) + 5)
    for response in (badge(client, headers, min_watermark=beyond),
                     tickets(client, headers, min_watermark=beyond)):
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


# -- the stream ------------------------------------------------------------------------------------
def test_stream_events_carry_the_watermark_and_resume_at_least_from_it(
        client, headers, tenant_id, services):
    post(client, headers, created())
    outbox.apply_pending(services, tenant_id)
    assert unread(badge(client, headers)) == 1
    stream_headers = {**headers(), "accept": "text/event-stream"}
    opened = client.get(STREAM, headers=stream_headers, buffered=False)
    try:
        first = BodyReader(iter(opened.response)).next_count()
    finally:
        opened.close()
    version, watermark = first.id.split(":")
    assert first.json["unread"] == 1 and position(tenant_id, watermark) >= 1
    # When a write lands that no worker applies, a client resuming from its watermark...
    written = post(client, headers, created())
    resumed = client.get(STREAM, headers={**stream_headers,
                                          "Last-Event-ID": f"{version}:{written}"},
                         buffered=False)
    try:
        event = BodyReader(iter(resumed.response)).next_count()
    finally:
        resumed.close()
    # ... gets the counts with that write at once
    assert event.json["unread"] == 2
    assert position(tenant_id, event.id.split(":")[1]) >= position(tenant_id, written)
    bad = client.get(STREAM, headers={**stream_headers, "Last-Event-ID": f"{version}:nope"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "VALIDATION_ERROR"
