"""The reading rules of tally.http.bodies and tally.http.fields, without a request (#3, #9);
tests/http/test_strict_input.py holds them on every endpoint."""
from __future__ import annotations

import pytest

from tally.http.bodies import too_deep


@pytest.mark.parametrize("data, deep", [
    (b'{"a": "' + b"[" * 500 + b'"}', False),  # brackets inside a string do not nest
    (b'{"a": "\\"' + b"[" * 500 + b'"}', False),  # nor after an escaped quote
    (b"[" * 65 + b"]" * 65, True),
    (b"[{" * 33 + b"}]" * 33, True),
    (b"[]" * 500, False),  # many brackets, never deep
    (b"[" * 70, True),  # unterminated: at least as deep as a parser would get
    (b'["x\\\\"' + b"[" * 70, True),  # an escaped backslash, then the string's end
    (b'"' + b"[" * 70, False),  # a string never closed: a parser fails before any bracket
    (b"[" * 60 + b'"' + b'\\"' * 100_000 + b"[" * 10, False),  # ... read once, not per quote
])
def test_depth_is_judged_without_parsing(data, deep):
    assert too_deep(data) is deep


def test_every_boolean_of_every_body_schema_is_strict():
    """One field for every body (tally.http.fields.StrictBoolean): each body schema, nested ones
    and the event data schemas included."""
    from marshmallow import fields

    from tally.http.schemas.events import DATA_SCHEMAS, EventBatchSchema
    from tally.http.fields import StrictBoolean
    from tally.http.schemas.filters import FilterBodySchema
    from tally.http.schemas.common import ReadBodySchema
    from tally.http.schemas.tickets import TicketCountBodySchema

    def booleans(schema):
        for field in schema.fields.values():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, fields.Nested):
                yield from booleans(inner.schema)
            elif isinstance(inner, fields.Boolean):
                yield inner

    bodies = [TicketCountBodySchema, ReadBodySchema, FilterBodySchema, EventBatchSchema,
              *DATA_SCHEMAS.values()]
    found = [field for body in bodies for field in booleans(body())]
    assert len(found) == 3  # read's `all`, a filter's `shared`, a ticket's `isSupportRequest`
    assert all(isinstance(field, StrictBoolean) for field in found), found
