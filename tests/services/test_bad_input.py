"""Bad input on POST /events: a clear 4xx in the envelope and nothing written, or all accepted."""
from __future__ import annotations

import io
import json
from unittest.mock import ANY

import pytest

from tally.services import maintenance
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES
from tally.services.outbox import apply_pending
from tests.support import events as b
from tests.support.events import NOTHING, written

pytestmark = pytest.mark.both_databases

SERVICE = ("ticket_service",)
ADMIN = ("ticket_admin",)
COUNT = "/api/v2/ticketing/ticket/count?type=template&module=ticketing"
NOTIFICATIONS = "/api/v2/ticketing/ticket/notification/count"


def valid(count: int) -> list[dict]:
    return [b.created(f"n-{i}") for i in range(count)]


def with_bad(bad: dict, at: int = 7, count: int = 20) -> dict:
    """`count` valid events with `bad` at index `at`."""
    events = valid(count)
    events.insert(at, bad)
    return {"events": events}


def _ticket_with(**fields) -> dict:
    raw = b.ticket("t-1", 1)
    raw["data"].update(fields)
    return raw


def _without_event_id() -> dict:
    raw = b.created("n-x")
    del raw["eventId"]
    return raw


# name -> (request kwargs for client.post, expected detail keys or None to skip that check)
BAD_BODIES = {
    "malformed json": (dict(data='{"events": [', content_type="application/json"), None),
    "truncated json": (dict(data=json.dumps({"events": valid(3)})[:-5],
                            content_type="application/json"), None),
    "empty body": (dict(data=b"", content_type="application/json"), {"events"}),
    "body is a list": (dict(json=valid(2)), {"_schema"}),
    "body is a string": (dict(json="events"), {"_schema"}),
    "body is null": (dict(data="null", content_type="application/json"), {"_schema"}),
    "unknown top-level field": (dict(json={"events": valid(1), "extra": 1}), {"extra"}),
    "events not a list": (dict(json={"events": {"0": b.created("n-1")}}), {"events"}),
    "events empty": (dict(json={"events": []}), {"events"}),
    "an event that is not an object": (dict(json=with_bad(42)), {"events[7]._schema"}),
    "wrong types in one event among many": (
        dict(json=with_bad(_ticket_with(version="3", tags="vpn", isSupportRequest="yes"))),
        {"events[7].data.version", "events[7].data.tags", "events[7].data.isSupportRequest"}),
    "boolean as version": (dict(json=with_bad(_ticket_with(version=True))),
                           {"events[7].data.version"}),
    "data not an object": (dict(json=with_bad(b.event("ticket.deleted", ["t-1"]))),
                           {"events[7].data"}),
    "unknown event type": (dict(json=with_bad(b.event("ticket.exploded", {"id": "t-1"}))),
                           {"events[7].type"}),
    "event type not a string": (dict(json=with_bad(b.event(["ticket.deleted"], {"id": "t"}))),
                                {"events[7].type"}),
    "missing eventId": (dict(json=with_bad(_without_event_id())), {"events[7].eventId"}),
    "non-UUID eventId": (dict(json=with_bad(b.created("n-x", event_id="evt-42"))),
                         {"events[7].eventId"}),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_bad_body_is_a_400_and_writes_nothing(services, client, headers, tenant_id, case):
    kwargs, detail_keys = BAD_BODIES[case]
    response = client.post(b.EVENTS, headers=headers(roles=SERVICE), **kwargs)
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["success"] is False and body["timestamp"].endswith("Z")
    assert body["error"]["code"] == "VALIDATION_ERROR"
    if detail_keys is not None:
        assert set(body["error"]["details"]) == detail_keys
    assert written(services, tenant_id) == NOTHING


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_a_body_not_declared_json_is_a_415(services, client, headers, tenant_id, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post(b.EVENTS, data=json.dumps({"events": valid(2)}),
                           headers=headers(roles=SERVICE), **kwargs)
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert written(services, tenant_id) == NOTHING


def test_a_vendor_json_type_and_a_streamed_body_under_the_limit_are_accepted(client, headers):
    response = client.post(b.EVENTS, data=json.dumps({"events": valid(2)}),
                           content_type="application/vnd.tally+json",
                           headers=headers(roles=SERVICE))
    assert response.status_code == 202
    assert response.get_json()["data"] == {"accepted": 2, "duplicates": 0, "watermark": ANY}
    streamed = client.post(b.EVENTS, input_stream=io.BytesIO(json.dumps(
        {"events": [b.created("n-9")]}).encode()), content_type="application/json",
        headers={"Transfer-Encoding": "chunked", **headers(roles=SERVICE)},
        environ_overrides={"wsgi.input_terminated": True})
    assert streamed.status_code == 202
    assert streamed.get_json()["data"] == {"accepted": 1, "duplicates": 0, "watermark": ANY}


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_max_content_length_is_a_413_in_the_envelope(
        app, services, client, headers, tenant_id, streamed):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 4 * 1024 * 1024  # the documented limit
    body = json.dumps({"events": valid(3), "padding": "x" * limit}).encode()
    if streamed:  # no Content-Length; the server (gunicorn) marks the stream as terminated
        kwargs = dict(input_stream=io.BytesIO(body), headers={"Transfer-Encoding": "chunked",
                                                              **headers(roles=SERVICE)},
                      environ_overrides={"wsgi.input_terminated": True})
    else:
        kwargs = dict(data=body, headers=headers(roles=SERVICE))
    response = client.post(b.EVENTS, content_type="application/json", **kwargs)
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert error["details"] == {"maxBytes": limit}
    assert written(services, tenant_id) == NOTHING


def test_one_event_over_the_per_call_limit_is_a_400(app, services, client, headers, tenant_id):
    limit = app.config["MAX_EVENTS_PER_CALL"]
    response = client.post(b.EVENTS, json={"events": valid(limit + 1)},
                           headers=headers(roles=SERVICE))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == ["events"]
    assert str(limit) in error["details"]["events"][0]
    assert written(services, tenant_id) == NOTHING


def _full_batch(limit: int) -> tuple[list[dict], dict[str, int]]:
    """`limit` events: 4/5 notifications over four users, 1/5 open tickets; the expected
    unread-by-type of user u-0 and critical tickets."""
    tickets = limit // 5
    events = [b.ticket(f"t-{i}", 1, priority=PRIORITIES[i % 4]) for i in range(tickets)]
    by_type = dict.fromkeys(NOTIFICATION_TYPES, 0)
    for i in range(limit - tickets):
        user, type_ = f"u-{i % 4}", NOTIFICATION_TYPES[(i // 4) % len(NOTIFICATION_TYPES)]
        events.append(b.created(f"n-{i}", user=user, type_=type_))
        if user == "u-0":
            by_type[type_] += 1
    return events, by_type


def test_exactly_the_per_call_limit_is_accepted_whole_and_counted(
        app, services, client, headers, tenant_id):
    limit = app.config["MAX_EVENTS_PER_CALL"]
    assert limit == 5000
    events, by_type = _full_batch(limit)
    admin, user = headers(user="boss", roles=ADMIN), headers(user="u-0")
    ask = {"filterIds": ["all", "4195", "3745"]}
    assert client.post(COUNT, json=ask, headers=admin).status_code == 200  # warm, all zero
    assert client.get(NOTIFICATIONS, headers=user).status_code == 200

    response = client.post(b.EVENTS, json={"events": events}, headers=headers(roles=SERVICE))

    assert response.status_code == 202, response.get_json()
    assert response.get_json()["data"] == {"accepted": limit, "duplicates": 0, "watermark": ANY}
    stored = written(services, tenant_id)
    assert (stored["tickets"], stored["notifications"], stored["seen_events"]) == (
        limit // 5, limit - limit // 5, limit)
    assert apply_pending(services, tenant_id).rows == stored["outbox"]
    tickets = client.post(COUNT, json=ask, headers=admin)
    assert tickets.headers["X-Count-Source"] == "cache"
    assert tickets.get_json()["data"]["counts"] == {"all": 1000, "4195": 250, "3745": 1000}
    mine = client.get(NOTIFICATIONS, headers=user)
    assert mine.headers["X-Count-Source"] == "cache"
    data = mine.get_json()["data"]
    assert (data["total"], data["unread"], data["byType"]) == (1000, 1000, by_type)
    assert maintenance.verify(services, tenant_id).lines == []
