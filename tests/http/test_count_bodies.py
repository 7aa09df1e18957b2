"""The hot endpoints write their JSON directly (tally.http.envelope.success_json, the views'
count_data and body_json); byte for byte it must be what their documented schemas dump, over many
inputs: the schemas are the one definition, the renderers a faster way to the same bytes."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st
from marshmallow import EXCLUDE

from tally.core.clock import from_epoch_ms, iso_ms
from tally.core.filters import SUMMARY_FILTERS
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, NotificationCounts
from tally.http import envelope
from tally.http.schemas import common as schemas, tickets as ticket_schemas
from tally.http.envelope import success, success_json
from tally.http.views.notifications import count_data
from tally.http.views.tickets import body_json
from tally.services.container import build_caches

TICKET_COUNT = "/api/v2/ticketing/ticket/count?type=agent&module=ticketing"
MANY = settings(max_examples=80, deadline=None)
COMPACT = {"separators": (",", ":")}
counts_n = st.integers(min_value=0, max_value=2**53)
moments = st.none() | st.integers(min_value=0, max_value=253_402_300_799_999)  # to year 9999
texts = st.text(max_size=12)  # any unicode: the renderers and json.dumps must escape alike
RENDERED = build_caches({}).rendered  # the app's cache of rendered badges, as an app builds it


def _counts(rng: random.Random, last_updated: int | None) -> NotificationCounts:
    by_type = {t: rng.randrange(50) for t in NOTIFICATION_TYPES}
    by_priority = {p: rng.randrange(50) for p in PRIORITIES}
    return NotificationCounts(sum(by_type.values()) + 7, sum(by_type.values()), by_type,
                              by_priority, last_updated)


notification_counts = st.builds(
    NotificationCounts, counts_n, counts_n,
    st.fixed_dictionaries({t: counts_n for t in NOTIFICATION_TYPES}),
    st.fixed_dictionaries({p: counts_n for p in PRIORITIES}), moments)


@MANY
@given(notification_counts)
def test_count_data_is_byte_for_byte_what_its_schemas_dump(counts):
    """The badge's data, sorted and compact: NotificationCountsSchema, or MinimalCountSchema for
    view=minimal; and the rendered JSON loads back through the schema to the same bytes."""
    for view, schema in (("full", schemas.NotificationCountsSchema()),
                         ("minimal", schemas.MinimalCountSchema())):
        text, etag = count_data(view, counts, RENDERED)
        assert text == json.dumps(schema.dump(counts), sort_keys=True, **COMPACT)
        # and valid by the document (counts >= 0, known keys); lastUpdated is dump-only
        schema.load(json.loads(text), unknown=EXCLUDE)
    assert count_data("full", counts, RENDERED)[1] != count_data("minimal", counts, RENDERED)[1]


def test_rendered_badges_stay_at_their_bound_and_answer_right():
    """Many distinct counts through a small `rendered` cache: it holds its size, never more,
    and each answer is what rendering afresh gives (a hit and a miss alike)."""
    rendered = build_caches({"rendered": 16}).rendered
    rng = random.Random(3)
    many = [_counts(rng, n) for n in range(200)]
    for counts in many + many[-8:]:
        for view in ("full", "minimal"):
            assert count_data(view, counts, rendered) == count_data(
                view, counts, build_caches({}).rendered)
        assert len(rendered) <= 16
    assert len(rendered) == 16


def _detail(id_: str, name: str, type_: str, color: str | None) -> dict:
    """A filterDetails entry as core.filters.FilterSpec.details builds it."""
    return {"id": id_, "name": name, "type": type_, **({"color": color} if color else {})}


detail = st.builds(_detail, texts, texts, st.sampled_from(ticket_schemas.FILTER_TYPES),
                   st.none() | st.sampled_from(["#3B82F6", "#ef4444"]))
ticket_results = st.builds(
    SimpleNamespace,
    counts=st.dictionaries(texts, counts_n, min_size=1, max_size=8),
    details=st.dictionaries(texts, detail, max_size=8),
    summary=st.fixed_dictionaries({key: counts_n for key in SUMMARY_FILTERS}),
    computed_at=st.integers(min_value=0, max_value=253_402_300_799_999))


@MANY
@given(ticket_results, texts)
def test_ticket_count_data_is_byte_for_byte_what_its_schema_dumps(drawn, timezone):
    """The sidebar's data (filterDetails serialised as core.plans serialises it) is what
    TicketCountsSchema dumps, compact and in the schema's order, of the same answer."""
    summary = {key: drawn.summary[key] for key in SUMMARY_FILTERS}  # the service's order
    result = SimpleNamespace(counts=drawn.counts, summary=summary,
                             computed_at=drawn.computed_at,
                             details_json=json.dumps(drawn.details, **COMPACT))
    text = body_json(result, timezone)
    schema = ticket_schemas.TicketCountsSchema()
    summary_fields = schema.fields["summary"].schema.fields
    answer = {"counts": drawn.counts, "filter_details": drawn.details,
              "summary": {name: drawn.summary[field.data_key or name]
                          for name, field in summary_fields.items()},
              "computed_at": iso_ms(from_epoch_ms(drawn.computed_at)), "timezone": timezone}
    assert text == json.dumps(schema.dump(answer), **COMPACT)
    assert json.dumps(schema.dump(schema.load(json.loads(text))), **COMPACT) == text


@MANY
@given(st.sampled_from([schemas.CountEnvelopeSchema, ticket_schemas.TicketCountEnvelopeSchema]),
       texts, st.integers(min_value=0, max_value=253_402_300_799_999))
def test_success_json_is_byte_for_byte_the_documented_envelope(envelope_schema, message, now):
    """The hot endpoints' envelope: the fields EnvelopeSchema dumps, with `data` written between
    `message` and `timestamp` (the order of envelope.success), compact."""
    data = {"count": 3} if envelope_schema is schemas.CountEnvelopeSchema else {
        "counts": {"all": 1}, "filterDetails": {}, "summary": dict.fromkeys(SUMMARY_FILTERS, 0),
        "computedAt": "2026-03-08T06:45:30.125Z", "timezone": "UTC"}
    moment = from_epoch_ms(now)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(envelope, "utc_now", lambda: moment)
        text = success_json(json.dumps(data, **COMPACT), message)
        expected = success(data, message)
    dumped = envelope_schema().dump(envelope_schema().load(json.loads(text)))
    assert dumped.keys() == expected.keys()
    assert text == json.dumps({key: dumped[key] for key in expected}, **COMPACT)


def test_the_etag_follows_the_values_not_the_order_they_were_counted_in():
    counts = _counts(random.Random(1), None)
    shuffled = NotificationCounts(counts.total, counts.unread,
                                  dict(reversed(list(counts.by_type.items()))),
                                  dict(reversed(list(counts.by_priority.items()))), None)
    assert count_data("full", counts, RENDERED) == count_data("full", shuffled, RENDERED)
    changed = NotificationCounts(counts.total, counts.unread + 1, counts.by_type,
                                 counts.by_priority, None)
    assert count_data("full", changed, RENDERED)[1] != count_data("full", counts, RENDERED)[1]


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
