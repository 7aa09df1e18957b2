"""Wire schemas: camelCase on the wire (data_key), snake_case in Python."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from tally.clock import from_epoch_ms, iso_ms
from tally.counting.model import NOTIFICATION_TYPES, PRIORITIES


def iso_or_none(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso_ms(from_epoch_ms(epoch_ms))


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
        if type(created) is not int or not isinstance(ident, str) or not 0 < len(ident) <= 64:
            raise ValidationError("Not a valid cursor.")
        return created, ident


# -- envelopes (documentation of the success body) ----------------------------------------------
class EnvelopeSchema(Schema):
    success = fields.Boolean(metadata={"example": True})
    message = fields.String()
    timestamp = fields.String(metadata={"example": "2025-07-10T12:34:56.789Z"})


class ErrorBodySchema(Schema):
    code = fields.String(metadata={"example": "UNAUTHORIZED"})
    message = fields.String()
    details = fields.Raw(allow_none=True)


class ErrorEnvelopeSchema(Schema):
    success = fields.Boolean(metadata={"example": False})
    error = fields.Nested(ErrorBodySchema)
    timestamp = fields.String(metadata={"example": "2025-07-10T12:34:56.789Z"})


# -- count --------------------------------------------------------------------------------------
class NotificationCountsSchema(Schema):
    """The badge payload: unread broken down by every type and priority."""

    total = fields.Integer(required=True)
    unread = fields.Integer(required=True)
    by_type = fields.Dict(data_key="byType", keys=fields.String(validate=validate.OneOf(
        NOTIFICATION_TYPES)), values=fields.Integer(), required=True)
    by_priority = fields.Dict(data_key="byPriority", keys=fields.String(validate=validate.OneOf(
        PRIORITIES)), values=fields.Integer(), required=True)
    last_updated = fields.Function(lambda counts: iso_or_none(counts.last_updated),
                                   data_key="lastUpdated", allow_none=True,
                                   metadata={"type": "string", "format": "date-time"})


class MinimalCountSchema(Schema):
    count = fields.Integer(attribute="unread", required=True)


class CountQuerySchema(Schema):
    view = fields.String(load_default="full", validate=validate.OneOf(["full", "minimal"]))


class CountEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(NotificationCountsSchema)


# -- list ---------------------------------------------------------------------------------------
class NotificationItemSchema(Schema):
    id = fields.String()
    type = fields.String()
    ticket_id = fields.String(data_key="ticketId", allow_none=True)
    priority = fields.String()
    created_at = fields.Function(lambda row: iso_or_none(row.created_at), data_key="createdAt",
                                 metadata={"type": "string", "format": "date-time"})
    read = fields.Boolean()


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationItemSchema))
    next_cursor = Cursor(attribute="next_after", data_key="nextCursor", allow_none=True,
                         metadata={"type": "string", "nullable": True})


class ListQuerySchema(Schema):
    """unread=true: unread only; unread=false: read only; absent: both."""

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    unread = fields.Boolean(load_default=None, allow_none=True)
    type = fields.String(load_default=None, validate=validate.OneOf(NOTIFICATION_TYPES))
    cursor = Cursor(load_default=None, metadata={"type": "string"})


class ListEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(NotificationPageSchema)


# -- read ---------------------------------------------------------------------------------------
class ReadBodySchema(Schema):
    """Exactly one of `ids` (1..1000 notification ids) or `all: true`."""

    ids = fields.List(fields.String(validate=validate.Length(1, 64)),
                      validate=validate.Length(1, 1000))
    all = fields.Boolean()

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if ("ids" in data) == ("all" in data):
            raise ValidationError("Give either 'ids' or 'all', not both nor neither.")
        if "all" in data and data["all"] is not True:
            raise ValidationError("'all' must be true.", "all")
