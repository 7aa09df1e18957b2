"""Schemas of POST /ticket/count: query, body and the seed's response."""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates

from tally.http.schemas import EnvelopeSchema

MAX_FILTER_IDS = 200


class TicketCountQuerySchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(("template", "agent", "user")),
                         metadata={"description": "whose tickets: template (widest), agent, user"})
    module = fields.String(required=True, validate=validate.OneOf(("ticketing",)))


class TicketCountBodySchema(Schema):
    # Items are any strings: a malformed id ("", too long, ...) is a 422 INVALID_FILTER_ID (§2).
    filter_ids = fields.List(fields.String(), data_key="filterIds",
                             required=True, validate=validate.Length(1, MAX_FILTER_IDS),
                             metadata={"example": ["all", "3745", "7471"]})
    template_profile_filter_id = fields.String(data_key="templateProfileFilterId",
                                               allow_none=True, load_default=None)
    timezone = fields.String(load_default="UTC", metadata={"example": "Asia/Calcutta"})

    @validates("timezone")
    def _zone(self, value: str, **_kwargs: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America", over-long
            raise ValidationError(f"{value!r} is not an IANA timezone") from None


class FilterDetailSchema(Schema):
    id = fields.String()
    name = fields.String()
    type = fields.String()
    color = fields.String()


class SummarySchema(Schema):
    total_open = fields.Integer(data_key="totalOpen")
    total_closed = fields.Integer(data_key="totalClosed")
    sla_breached = fields.Integer(data_key="slaBreached")
    due_today = fields.Integer(data_key="dueToday")
    overdue = fields.Integer()


class TicketCountsSchema(Schema):
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    filter_details = fields.Dict(keys=fields.String(), values=fields.Nested(FilterDetailSchema),
                                 data_key="filterDetails")
    summary = fields.Nested(SummarySchema)
    computed_at = fields.String(data_key="computedAt")
    timezone = fields.String()


class TicketCountEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(TicketCountsSchema)
