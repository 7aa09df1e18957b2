"""The POST /events body: every type loads, and every mistake names its event and field."""
from __future__ import annotations

import pytest
from marshmallow import ValidationError

from tally.http.schemas.events import EventBatchSchema, load_events
from tests.support import events as b


def errors_of(body):
    with pytest.raises(ValidationError) as caught:
        load_events(body)
    return caught.value.messages


def test_each_event_type_loads_with_epoch_ms_and_snake_case():
    events = b.loaded(b.ticket("t-1", 3, dueAt="2025-07-11T00:00:00Z", tags=["b", "a", "b"]),
                      b.ticket_deleted("t-2", 4), b.created("n-1"), b.read("user-1", ["n-1"]),
                      b.deleted("n-1"))
    assert [e.type for e in events] == ["ticket.upserted", "ticket.deleted",
                                        "notification.created", "notification.read",
                                        "notification.deleted"]
    ticket = events[0].data
    assert ticket["created_at"] == 1_752_150_896_789
    assert ticket["due_at"] == 1_752_192_000_000
    assert ticket["sla_due_at"] is None
    assert ticket["team_id"] == "team-a" and ticket["tags"] == ["a", "b"]
    assert events[2].data["user_id"] == "user-1"
    assert events[3].data == {"user_id": "user-1", "ids": ["n-1"]}
    assert events[0].occurred_at == 1_752_150_896_789


def test_naive_timestamps_are_utc_and_event_ids_are_canonical():
    raw = b.created("n-1", event_id="6F0B9A36-3F68-4D4F-9E7E-5B2B9A6F3F11")
    raw["data"]["createdAt"] = "2025-07-10T12:34:56"
    [event] = b.loaded(raw)
    assert event.data["created_at"] == 1_752_150_896_000
    assert event.event_id == "6f0b9a36-3f68-4d4f-9e7e-5b2b9a6f3f11"


def test_unknown_type_names_the_event_index():
    messages = errors_of({"events": [b.created("n-1"), b.event("ticket.exploded", {})]})
    assert list(messages) == ["events[1].type"]


def test_bad_enum_names_event_index_and_data_field():
    bad = b.created("n-1", priority="urgent")
    messages = errors_of({"events": [b.created("n-0"), b.created("n-2"), bad]})
    assert list(messages) == ["events[2].data.priority"]
    assert "critical" in messages["events[2].data.priority"][0]


@pytest.mark.parametrize("field, value", [
    ("id", "has space"), ("id", "x" * 65), ("userId", ""), ("userId", None), ("type", "fax"),
])
def test_notification_fields_are_checked(field, value):
    raw = b.created("n-1")
    raw["data"][field] = value
    assert f"events[0].data.{field}" in errors_of({"events": [raw]})


@pytest.mark.parametrize("field, value", [
    ("version", "3"), ("version", 1.5), ("version", -1), ("status", "done"),
    ("createdAt", "yesterday"), ("tags", "vpn"), ("assigneeId", "a/b"),
])
def test_ticket_fields_are_checked(field, value):
    raw = b.ticket("t-1", 1)
    raw["data"][field] = value
    assert f"events[0].data.{field}" in errors_of({"events": [raw]})


def test_missing_envelope_fields_are_reported_per_event():
    messages = errors_of({"events": [{"type": "notification.deleted", "data": {}}]})
    assert set(messages) == {"events[0].eventId", "events[0].occurredAt", "events[0].data.id"}


def test_read_needs_at_least_one_id():
    assert "events[0].data.ids" in errors_of({"events": [b.read("user-1", [])]})


def test_data_must_be_an_object():
    raw = b.created("n-1")
    raw["data"] = ["not", "an", "object"]
    assert errors_of({"events": [raw]}) == {"events[0].data": ["Must be an object."]}


def test_batch_must_hold_at_least_one_event():
    assert list(errors_of({"events": []})) == ["events"]


def test_batch_size_limit_comes_from_the_app_config(make_app):
    app = make_app(MAX_EVENTS_PER_CALL=2)
    with app.app_context():
        assert len(load_events({"events": [b.created("n-1"), b.created("n-2")]})) == 2
        messages = errors_of({"events": [b.created(f"n-{i}") for i in range(3)]})
    assert messages == {"events": ["Must hold 1 to 2 events, not 3."]}


def test_unknown_top_level_fields_are_rejected_but_unknown_data_fields_ignored():
    raw = b.created("n-1")
    raw["data"]["title"] = "kept upstream, ignored here"
    assert "title" not in b.loaded(raw)[0].data
    assert errors_of({"events": [b.created("n-1")], "extra": 1}) == {"extra": ["Unknown field."]}


def test_body_that_is_not_an_object_is_rejected():
    with pytest.raises(ValidationError):
        EventBatchSchema().load([])
