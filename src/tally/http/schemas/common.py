"""Wire schemas: camelCase on the wire (data_key), snake_case in Python."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from tally.core.clock import from_epoch_ms, iso_ms
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES
from tally.http.fields import StrictBoolean
from tally.http.bodies import storable


def iso_or_none(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso_ms(from_epoch_ms(epoch_ms))


class StringList(fields.List):
    """A list of strings, checked in one pass when it is one (a sidebar sends ~30 filter ids
    every few seconds); anything else goes through fields.List for the usual error messages."""

    def __init__(self, **kwargs: Any):
        super().__init__(fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if type(value) is list and all(type(item) is str for item in value):
            return list(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Cursor(fields.Field):
    """An opaque keyset position: (created_at ms, id) as unpadded url-safe base64 of JSON."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        raw = json.dumps([int(value[0]), str(value[1])], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[int, str]:
        try:
            text = str(value)
            decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            created, ident = decoded
        except (ValueError, TypeError, binascii.Error):
            raise ValidationError("Not a valid cursor.") from None
        if type(created) is not int or not isinstance(ident, str) or not 0 < len(ident) <= 64 \
                or not storable(ident):
            raise ValidationError("Not a valid cursor.")
        return created, ident


# -- envelopes (documentation of the success body) ----------------------------------------------
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"  # ISO 8601 UTC, milliseconds, Z
EXAMPLE_TIMESTAMP = "2025-07-10T12:34:56.789Z"


def _timestamp(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(TIMESTAMP), metadata={
        "format": "date-time", "example": EXAMPLE_TIMESTAMP}, **kwargs)


class EnvelopeSchema(Schema):
    success = fields.Boolean(required=True, validate=validate.Equal(True),
                             metadata={"example": True})
    message = fields.String(required=True)
    timestamp = _timestamp(required=True)


class ErrorBodySchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Z][A-Z_]*$"),
                         metadata={"example": "UNAUTHORIZED"})
    message = fields.String(required=True, metadata={
        "example": "Invalid or expired authentication token"})
    details = fields.Raw(required=True, allow_none=True, metadata={
        "description": "null, or what was wrong: the field paths of a VALIDATION_ERROR, "
                       "`invalidIds` of an INVALID_FILTER_ID, the header of an INVALID_HEADER"})


class ErrorEnvelopeSchema(Schema):
    success = fields.Boolean(required=True, validate=validate.Equal(False),
                             metadata={"example": False})
    error = fields.Nested(ErrorBodySchema, required=True)
    timestamp = _timestamp(required=True)


# -- count --------------------------------------------------------------------------------------
def _every(names: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI for an object holding an integer ≥ 0 under each of `names`, and nothing else."""
    return {"properties": {name: {"type": "integer", "minimum": 0} for name in names},
            "required": list(names), "additionalProperties": False}


class NotificationCountsSchema(Schema):
    """The badge payload: unread broken down by every type and priority."""

    total = fields.Integer(required=True, validate=validate.Range(min=0),
                           metadata={"example": 24})
    unread = fields.Integer(required=True, validate=validate.Range(min=0),
                            metadata={"example": 12})
    by_type = fields.Dict(data_key="byType", keys=fields.String(validate=validate.OneOf(
        NOTIFICATION_TYPES)), values=fields.Integer(), required=True,
        metadata=_every(NOTIFICATION_TYPES))
    by_priority = fields.Dict(data_key="byPriority", keys=fields.String(validate=validate.OneOf(
        PRIORITIES)), values=fields.Integer(), required=True, metadata=_every(PRIORITIES))
    last_updated = fields.Function(lambda counts: iso_or_none(counts.last_updated),
                                   data_key="lastUpdated", allow_none=True, required=True,
                                   metadata={"type": "string", "format": "date-time",
                                             "example": EXAMPLE_TIMESTAMP})


class MinimalCountSchema(Schema):
    count = fields.Integer(attribute="unread", required=True, validate=validate.Range(min=0),
                           metadata={"example": 12})


class CountQuerySchema(Schema):
    view = fields.String(load_default="full", validate=validate.OneOf(["full", "minimal"]))


# Components registered by tally.http.openapi, so that `data` can be either of them.
COUNT_DATA = ("NotificationCounts", "MinimalCount")


class CountEnvelopeSchema(EnvelopeSchema):
    data = fields.Raw(required=True, metadata={
        "description": "NotificationCounts; with view=minimal, MinimalCount ({count: unread})",
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in COUNT_DATA]})


# -- list ---------------------------------------------------------------------------------------
class NotificationItemSchema(Schema):
    id = fields.String(required=True, metadata={"example": "n-1042"})
    type = fields.String(required=True, validate=validate.OneOf(NOTIFICATION_TYPES))
    ticket_id = fields.String(data_key="ticketId", allow_none=True, required=True,
                              metadata={"example": "T-311"})
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    created_at = fields.Function(lambda row: iso_or_none(row.created_at), data_key="createdAt",
                                 required=True, metadata={"type": "string", "format": "date-time",
                                                          "example": EXAMPLE_TIMESTAMP})
    read = fields.Boolean(required=True)


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationItemSchema), required=True)
    next_cursor = Cursor(attribute="next_after", data_key="nextCursor", allow_none=True,
                         required=True, metadata={
                             "type": "string", "nullable": True,
                             "description": "Pass as `cursor` for the next page; null on the last"})


class ListQuerySchema(Schema):
    """unread=true: unread only; unread=false: read only; absent: both."""

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    unread = fields.Boolean(load_default=None, allow_none=True)
    type = fields.String(load_default=None, validate=validate.OneOf(NOTIFICATION_TYPES))
    cursor = Cursor(load_default=None, metadata={"type": "string"})


class ListEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(NotificationPageSchema, required=True)


# -- read ---------------------------------------------------------------------------------------
class ReadBodySchema(Schema):
    """Exactly one of `ids` (1..1000 notification ids) or `all: true`."""

    ids = fields.List(fields.String(validate=validate.Length(1, 64)),
                      validate=validate.Length(1, 1000), metadata={"example": ["n-1042", "n-1043"]})
    all = StrictBoolean(metadata={"description": "true: mark every notification read"})

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if ("ids" in data) == ("all" in data):
            raise ValidationError("Give either 'ids' or 'all', not both nor neither.")
        if "all" in data and data["all"] is not True:
            raise ValidationError("'all' must be true.", "all")
