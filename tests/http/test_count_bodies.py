"""The hot endpoints write their JSON directly; it must still be what their schemas document."""
from __future__ import annotations

import json
import random

import pytest

from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, NotificationCounts
from tally.http.schemas import common as schemas, tickets as ticket_schemas
from tally.http.envelope import success, success_json
from tally.http.views.notifications import count_data

TICKET_COUNT = "/api/v2/ticketing/ticket/count?type=agent&module=ticketing"


def _counts(rng: random.Random, last_updated: int | None) -> NotificationCounts:
    by_type = {t: rng.randrange(50) for t in NOTIFICATION_TYPES}
    by_priority = {p: rng.randrange(50) for p in PRIORITIES}
    return NotificationCounts(sum(by_type.values()) + 7, sum(by_type.values()), by_type,
                              by_priority, last_updated)


@pytest.mark.parametrize("last_updated", [None, 1_767_225_600_123])
def test_count_data_is_the_documented_payload_for_both_views(last_updated):
    rng = random.Random(5)
    for _ in range(20):
        counts = _counts(rng, last_updated)
        full, full_tag = count_data("full", counts)
        minimal, minimal_tag = count_data("minimal", counts)
        assert json.loads(full) == schemas.NotificationCountsSchema().dump(counts)
        assert json.loads(minimal) == schemas.MinimalCountSchema().dump(counts) == {
            "count": counts.unread}
        assert full_tag != minimal_tag


def test_the_etag_follows_the_values_not_the_order_they_were_counted_in():
    counts = _counts(random.Random(1), None)
    shuffled = NotificationCounts(counts.total, counts.unread,
                                  dict(reversed(list(counts.by_type.items()))),
                                  dict(reversed(list(counts.by_priority.items()))), None)
    assert count_data("full", counts) == count_data("full", shuffled)
    changed = NotificationCounts(counts.total, counts.unread + 1, counts.by_type,
                                 counts.by_priority, None)
    assert count_data("full", changed)[1] != count_data("full", counts)[1]


def test_success_json_is_the_success_envelope():
    data = {"a": [1, 2], "b": "é\"x"}
    raw = json.loads(success_json(json.dumps(data), "Done"))
    expected = success(data, "Done")
    assert raw.keys() == expected.keys()
    assert {k: v for k, v in raw.items() if k != "timestamp"} == {
        k: v for k, v in expected.items() if k != "timestamp"}
    assert raw["timestamp"].endswith("Z")


def test_the_ticket_count_body_loads_with_its_documented_schema(client, headers, tenant_id):
    body = {"filterIds": ["all", "3745", "7440", "5932"], "timezone": "Asia/Calcutta"}
    response = client.post(TICKET_COUNT, json=body,
                           headers=headers(roles=["ticket_agent"], teams=["t1"]))
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    loaded = ticket_schemas.TicketCountEnvelopeSchema().load(response.get_json())
    assert list(loaded["data"]["counts"]) == body["filterIds"]
    assert set(loaded["data"]["filter_details"]) == set(body["filterIds"])
    assert loaded["data"]["timezone"] == "Asia/Calcutta"


@pytest.mark.parametrize("value, loaded", [
    (["all", "3745"], ["all", "3745"]),
    ([], []),
    (["x", 3], None), (["x", None], None), ("all", None), ({"a": 1}, None), (None, None),
])
def test_string_list_takes_lists_of_strings_and_rejects_the_rest_as_fields_list_does(value,
                                                                                     loaded):
    from marshmallow import Schema, ValidationError, fields

    fast = Schema.from_dict({"ids": schemas.StringList(allow_none=False)})()
    plain = Schema.from_dict({"ids": fields.List(fields.String(), allow_none=False)})()
    if loaded is not None:
        assert fast.load({"ids": value}) == plain.load({"ids": value}) == {"ids": loaded}
        return
    with pytest.raises(ValidationError) as fast_error:
        fast.load({"ids": value})
    with pytest.raises(ValidationError) as plain_error:
        plain.load({"ids": value})
    assert fast_error.value.messages == plain_error.value.messages
