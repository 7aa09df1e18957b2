"""Schemas of POST /ticket/count: query, body and the seed's response."""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates

from tally.http.schemas.common import EXAMPLE_TIMESTAMP, EnvelopeSchema, StringList

MAX_FILTER_IDS = 200
FILTER_TYPES = ("system", "status", "priority", "assignment", "team", "time", "sla", "custom")


class TicketCountQuerySchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(("template", "agent", "user")),
                         metadata={"description": "whose tickets: template (widest), agent, user"})
    module = fields.String(required=True, validate=validate.OneOf(("ticketing",)))


class TicketCountBodySchema(Schema):
    # Items are any strings: a malformed id ("", too long, ...) is a 422 INVALID_FILTER_ID (§2).
    filter_ids = StringList(data_key="filterIds", required=True,
                            validate=validate.Length(1, MAX_FILTER_IDS),
                            metadata={"example": ["all", "3745", "7471"], "description":
                                      "1 to 200 filter ids: `all`, numeric system ids, custom "
                                      "filter UUIDs; one the caller cannot see is a 422"})
    template_profile_filter_id = fields.String(data_key="templateProfileFilterId",
                                               allow_none=True, load_default=None, metadata={
                                                   "description": "A saved filter (no time "
                                                   "condition) narrowing every count"})
    timezone = fields.String(load_default="UTC", metadata={
        "example": "Asia/Calcutta", "description": "IANA zone of the `today` windows"})

    @validates("timezone")
    def _zone(self, value: str, **_kwargs: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America", over-long
            raise ValidationError(f"{value!r} is not an IANA timezone") from None


class FilterDetailSchema(Schema):
    id = fields.String(required=True, metadata={"example": "3745"})
    name = fields.String(required=True, metadata={"example": "Open"})
    type = fields.String(required=True, validate=validate.OneOf(FILTER_TYPES))
    color = fields.String(metadata={"example": "#3B82F6"})


def _count(**kwargs: Any) -> fields.Integer:
    return fields.Integer(required=True, validate=validate.Range(min=0), **kwargs)


class SummarySchema(Schema):
    total_open = _count(data_key="totalOpen", metadata={"example": 42})
    total_closed = _count(data_key="totalClosed", metadata={"example": 58})
    sla_breached = _count(data_key="slaBreached", metadata={"example": 3})
    due_today = _count(data_key="dueToday", metadata={"example": 5})
    overdue = _count(metadata={"example": 7})


class TicketCountsSchema(Schema):
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(validate=validate.Range(
        min=0)), required=True, metadata={"example": {"all": 100, "3745": 42}})
    filter_details = fields.Dict(keys=fields.String(), values=fields.Nested(FilterDetailSchema),
                                 data_key="filterDetails", required=True)
    summary = fields.Nested(SummarySchema, required=True)
    computed_at = fields.String(data_key="computedAt", required=True, metadata={
        "format": "date-time", "example": EXAMPLE_TIMESTAMP})
    timezone = fields.String(required=True, metadata={"example": "Asia/Calcutta"})


class TicketCountEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(TicketCountsSchema, required=True)
