"""GET /ticket/notification/stream in-process: first event, pushes, resume, bounds, auth."""
from __future__ import annotations

import itertools
import socket
import uuid

import pytest

from tally.services import outbox
from tally.http.views.stream import hub
from tally.dev.launcher import RedisProcess
from tests.support import factories
from tests.support.factories import MIX
from tests.support.sse import BodyReader
from tests.support import processes as procs

PREFIX = "/api/v2/ticketing"
STREAM = f"{PREFIX}/ticket/notification/stream"
COUNT = f"{PREFIX}/ticket/notification/count"
NOW = "2025-07-10T12:00:00.000Z"
FAST = dict(STREAM_HEARTBEAT_SECONDS=0.2, STREAM_MAX_SECONDS=60)


def created(user: str, notification_id: str | None = None) -> dict:
    return {"eventId": str(uuid.uuid4()), "type": "notification.created", "occurredAt": NOW,
            "data": {"id": notification_id or f"n-{uuid.uuid4().hex[:12]}", "userId": user,
                     "type": "mention", "ticketId": "TCK-1", "priority": "critical",
                     "createdAt": NOW}}


@pytest.fixture
def app(make_app):
    return make_app(**FAST)


@pytest.fixture
def seeded(services, tenant_id):
    factories.notifications(services.db, tenant_id, "user-1", MIX)  # 4 unread, 6 live
    return tenant_id


@pytest.fixture
def open_stream(client, headers):
    opened = []

    def open_(user: str = "user-1", query: str = "", **extra: str):
        call = {**headers(user), "accept": "text/event-stream", **extra}
        response = client.get(STREAM + query, headers=call, buffered=False)
        opened.append(response)
        return response

    yield open_
    for response in opened:
        response.close()


def post_event(client, headers, services, tenant_id, event: dict) -> None:
    """Ingest one event as the ticket service, then apply it here (as a worker would)."""
    call = {**headers("svc", roles=("ticket_service",)), "content-type": "application/json"}
    assert client.post(f"{PREFIX}/events", json={"events": [event]}, headers=call).status_code \
        == 202
    outbox.apply_pending(services, tenant_id)


def test_the_first_event_is_the_count_body_with_its_etag_and_watermark_as_id(
        client, headers, seeded, open_stream):
    response = open_stream()
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "private, no-cache"
    reader = BodyReader(iter(response.response))
    assert reader.next().retry == 3000
    first = reader.next_count()
    polled = client.get(COUNT, headers=headers())
    assert first.json == polled.get_json()["data"]
    assert first.json["unread"] == 4 and first.json["total"] == 6
    version, watermark = first.id.split(":")
    assert version == polled.headers["ETag"].strip('"')
    assert watermark.split(".")[1] == polled.headers["X-Count-Watermark"].split(".")[1]


def test_minimal_view_streams_the_minimal_body(headers, seeded, open_stream):
    reader = BodyReader(iter(open_stream(query="?view=minimal").response))
    assert reader.next_count().json == {"count": 4}


def test_a_created_notification_is_pushed_with_the_new_counts(client, headers, services, seeded,
                                                              open_stream):
    reader = BodyReader(iter(open_stream().response))
    first = reader.next_count()
    post_event(client, headers, services, seeded, created("user-1"))
    pushed = reader.next_count()
    assert pushed.json["unread"] == 5 and pushed.json["byType"]["mention"] == 1
    assert pushed.id != first.id
    assert pushed.json == client.get(COUNT, headers=headers()).get_json()["data"]


def test_mark_read_in_the_web_process_reaches_the_stream(client, headers, seeded, open_stream):
    reader = BodyReader(iter(open_stream().response))
    reader.next_count()
    read = client.post(f"{PREFIX}/ticket/notification/read", json={"all": True},
                       headers=headers())
    assert read.status_code == 200
    assert reader.next_count().json["unread"] == 0


def test_other_users_changes_are_not_pushed(client, headers, services, seeded, open_stream):
    reader = BodyReader(iter(open_stream().response))
    first = reader.next_count()
    post_event(client, headers, services, seeded, created("user-2"))
    post_event(client, headers, services, seeded, created("user-1"))
    # The next event is user-1's own change: user-2's produced none in between.
    assert reader.next_count().json["unread"] == first.json["unread"] + 1


def test_resume_sends_at_once_only_what_changed_since_last_event_id(
        client, headers, services, seeded, open_stream):
    # Given a client that saw version v1 and disconnected
    first = open_stream()
    seen = BodyReader(iter(first.response)).next_count()
    first.close()
    # When nothing changed, a resume sends no count event until something does
    quiet = BodyReader(iter(open_stream(**{"Last-Event-ID": seen.id}).response))
    blocks = [quiet.next() for _ in range(4)]
    assert [b.event for b in blocks] == [None] * 4  # the retry hint, then keep-alives
    post_event(client, headers, services, seeded, created("user-1"))
    assert quiet.next_count().json["unread"] == 5
    # And a client that missed that change gets it first thing on reconnect
    resumed = BodyReader(iter(open_stream(**{"Last-Event-ID": seen.id}).response))
    missed = resumed.next_count(limit=2)
    assert missed.json["unread"] == 5 and missed.id != seen.id


def test_a_stream_ends_after_its_maximum_life(make_app, tenant_id, headers, seeded):
    client = make_app(STREAM_HEARTBEAT_SECONDS=0.05, STREAM_MAX_SECONDS=0.3).test_client()
    response = client.get(STREAM, headers={**headers(), "accept": "text/event-stream"},
                          buffered=False)
    blocks = list(response.response)  # ends by itself
    assert b"event: count" in b"".join(blocks)
    response.close()


def test_streams_beyond_the_process_bound_get_503_with_retry_after(make_app, headers, seeded):
    client = make_app(STREAMS_PER_PROCESS=2, **FAST).test_client()
    held = [client.get(STREAM, headers={**headers(user), "accept": "text/event-stream"},
                       buffered=False) for user in ("user-1", "user-2")]
    assert [r.status_code for r in held] == [200, 200]
    call = {**headers("user-3"), "accept": "text/event-stream"}  # holding none here
    refused = client.get(STREAM, headers=call, buffered=False)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    held[0].close()
    again = client.get(STREAM, headers=call, buffered=False)
    assert again.status_code == 200
    for response in (held[1], again):
        response.close()


def test_a_users_new_stream_at_their_bound_replaces_their_oldest(make_app, headers, seeded):
    # Given a user at their bound of one stream (a reloaded tab whose old stream is still open)
    client = make_app(STREAMS_PER_USER=1, **FAST).test_client()
    call = {**headers(), "accept": "text/event-stream"}
    old = client.get(STREAM, headers=call, buffered=False)
    old_reader = BodyReader(iter(old.response))
    assert old_reader.next_count().json["unread"] == 4
    # When they open another
    new = client.get(STREAM, headers=call, buffered=False)
    # Then it streams, and the old one ends (never a refusal the browser would give up on)
    assert new.status_code == 200
    assert BodyReader(iter(new.response)).next_count().json["unread"] == 4
    assert len(list(itertools.islice(old_reader.chunks, 25))) < 25
    # And other users still stream beside them
    theirs = client.get(STREAM, headers={**headers("user-2"), "accept": "text/event-stream"},
                        buffered=False)
    assert theirs.status_code == 200
    assert hub(client.application).count() == 2
    for response in (old, new, theirs):
        response.close()


def test_a_full_process_takes_a_users_stream_in_place_of_their_own_oldest(
        make_app, headers, seeded):
    # Given a process full of streams, one of them user-1's
    client = make_app(STREAMS_PER_PROCESS=2, **FAST).test_client()
    mine = client.get(STREAM, headers={**headers(), "accept": "text/event-stream"},
                      buffered=False)
    theirs = client.get(STREAM, headers={**headers("user-2"), "accept": "text/event-stream"},
                        buffered=False)
    # When user-1 reconnects, and a third user tries
    again = client.get(STREAM, headers={**headers(), "accept": "text/event-stream"},
                       buffered=False)
    stranger = client.get(STREAM, headers={**headers("user-3"), "accept": "text/event-stream"},
                          buffered=False)
    # Then user-1's new stream replaced their old one; only the stranger is refused
    assert (again.status_code, stranger.status_code) == (200, 503)
    assert stranger.headers["Retry-After"] == "5"
    assert len(list(itertools.islice(iter(mine.response), 25))) < 25
    assert BodyReader(iter(theirs.response)).next_count().json["unread"] == 0
    for response in (mine, theirs, again, stranger):
        response.close()


def test_a_stream_ends_as_soon_as_its_client_closes_the_connection(make_app, headers, seeded):
    # Given a stream whose server socket (what gunicorn hands the app) the test holds the
    # other end of, with a life of a minute
    app = make_app(STREAM_HEARTBEAT_SECONDS=0.2, STREAM_MAX_SECONDS=60)
    ours, theirs = socket.socketpair()
    response = app.test_client().get(
        STREAM, buffered=False, headers={**headers(), "accept": "text/event-stream"},
        environ_overrides={"gunicorn.socket": ours})
    reader = BodyReader(iter(response.response))
    assert reader.next_count().json["unread"] == 4
    # When the client closes its end
    theirs.close()
    # Then the stream ends at once (within a few keep-alives, not after its minute), and its
    # slot is free
    assert len(list(itertools.islice(reader.chunks, 25))) < 25
    response.close()
    assert hub(app).count() == 0
    ours.close()


def test_the_stream_checks_headers_and_query_like_every_call(client, headers, seeded):
    cases = [(lambda h: h.pop("Authorization"), "", 401, "UNAUTHORIZED"),
             (lambda h: h.update({"x-tenantid": "nope"}), "", 400, "INVALID_HEADER"),
             (lambda h: h.update({"accept": "text/html"}), "", 406, "NOT_ACCEPTABLE"),
             (lambda h: None, "?view=huge", 400, "VALIDATION_ERROR")]
    for change, query, status, code in cases:
        call = {**headers(), "accept": "text/event-stream"}
        change(call)
        response = client.get(STREAM + query, headers=call)
        assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)


def test_one_pubsub_connection_serves_every_stream_of_a_process(app, services, raw, seeded):
    # Given 25 streams of 25 users in one process
    fanout = hub(app)
    subscriptions = [fanout.open(f"chan-{n}") for n in range(25)]
    try:
        for subscription in subscriptions:
            assert subscription.wait(10)  # woken once its channel's SUBSCRIBE is confirmed

        def holding() -> list[str]:
            return [c["sub"] for c in raw.client_list(_type="pubsub") if c["sub"] != "0"]

        # Then Redis sees one pub/sub client holding all 25 channels
        procs.wait_until(lambda: holding() == ["25"], 10, "one client on 25 channels")
        # And a publish wakes exactly the streams of its channel. (The first publish is read
        # after every SUBSCRIBE confirmation on that one connection, whose wakes are drained.)
        raw.publish("chan-3", "changed")
        assert subscriptions[3].wait(10)
        for subscription in subscriptions:
            subscription.wait(0)
        raw.publish("chan-3", "changed")
        assert subscriptions[3].wait(10)
        assert not any(s.wait(0) for i, s in enumerate(subscriptions) if i != 3)
    finally:
        for subscription in subscriptions:
            subscription.close()
    assert fanout.count() == 0


def test_streams_see_changes_made_while_redis_was_down(tmp_path, make_app, headers, services,
                                                       seeded):
    # Given a stream on its own redis-server
    own = RedisProcess(workdir=str(tmp_path)).start()
    try:
        app = make_app(REDIS_URL=own.url, **FAST)
        client = app.test_client()
        response = client.get(STREAM, headers={**headers(), "accept": "text/event-stream"},
                              buffered=False)
        reader = BodyReader(iter(response.response))
        assert reader.next_count().json["unread"] == 4
        # When Redis goes away, a notification arrives (SQL only), and Redis comes back empty
        own.kill()
        factories.notification(services.db, seeded, "user-1", type="comment")
        own.start()
        # Then the stream sends the new count (re-read on heartbeat or on re-subscribe)
        assert reader.next_count(limit=2000).json["unread"] == 5
        response.close()
    finally:
        own.stop()
