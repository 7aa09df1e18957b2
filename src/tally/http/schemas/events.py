"""The POST /events body (contract §4): an envelope of typed change events, validated strictly.

Errors name the event and the field as flat paths, e.g. ``{"events[3].data.priority": [...]}``.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from flask import current_app, has_app_context
from marshmallow import (EXCLUDE, RAISE, Schema, ValidationError, fields, post_load,
                         validate)

from tally.core.clock import epoch_ms
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, STATUSES, Event
from tally.http.fields import StrictBoolean
from tally.stores.keys import ID_PATTERN

DEFAULT_MAX_EVENTS = 5000
MAX_IDS_PER_READ = 5000
MAX_TAGS = 100
BIGINT_MAX = 2**63 - 1


def _id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(
        ID_PATTERN, error="Must be 1 to 64 characters of letters, digits and ._@:|-"), **kwargs)


def _moment(**kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(format="iso", default_timezone=timezone.utc, **kwargs)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else epoch_ms(value)


class _Data(Schema):
    class Meta:
        unknown = EXCLUDE  # producers may send more of their model than we keep


class TicketUpsertedSchema(_Data):
    id = _id(required=True)
    version = fields.Integer(required=True, strict=True, validate=validate.Range(0, BIGINT_MAX))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    team_id = _id(allow_none=True, load_default=None, data_key="teamId")
    assignee_id = _id(allow_none=True, load_default=None, data_key="assigneeId")
    requester_id = _id(allow_none=True, load_default=None, data_key="requesterId")
    category = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    tags = fields.List(fields.String(validate=validate.Length(1, 100)), load_default=list,
                       validate=validate.Length(max=MAX_TAGS))
    is_support_request = StrictBoolean(load_default=False, data_key="isSupportRequest")
    created_at = _moment(required=True, data_key="createdAt")
    due_at = _moment(allow_none=True, load_default=None, data_key="dueAt")
    sla_due_at = _moment(allow_none=True, load_default=None, data_key="slaDueAt")

    @post_load
    def _epoch(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        for name in ("created_at", "due_at", "sla_due_at"):
            data[name] = _ms(data[name])
        data["tags"] = sorted(set(data["tags"]))
        return data


class TicketDeletedSchema(_Data):
    id = _id(required=True)
    version = fields.Integer(required=True, strict=True, validate=validate.Range(0, BIGINT_MAX))


class NotificationCreatedSchema(_Data):
    id = _id(required=True)
    user_id = _id(required=True, data_key="userId")
    type = fields.String(required=True, validate=validate.OneOf(NOTIFICATION_TYPES))
    ticket_id = _id(allow_none=True, load_default=None, data_key="ticketId")
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    created_at = _moment(required=True, data_key="createdAt")

    @post_load
    def _epoch(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["created_at"] = _ms(data["created_at"])
        return data


class NotificationReadSchema(_Data):
    user_id = _id(required=True, data_key="userId")
    ids = fields.List(_id(), required=True, validate=validate.Length(1, MAX_IDS_PER_READ))


class NotificationDeletedSchema(_Data):
    id = _id(required=True)


DATA_SCHEMAS: dict[str, type[Schema]] = {
    "ticket.upserted": TicketUpsertedSchema,
    "ticket.deleted": TicketDeletedSchema,
    "notification.created": NotificationCreatedSchema,
    "notification.read": NotificationReadSchema,
    "notification.deleted": NotificationDeletedSchema,
}

# One instance each, shared: load() keeps no state on the schema, and building a schema (it
# deep-copies its declared fields) cost more than loading an event did.
_DATA_LOADERS: dict[str, Schema] = {name: schema() for name, schema in DATA_SCHEMAS.items()}


class _EventData(fields.Field):
    """The `data` object, validated by the schema its sibling `type` names."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValidationError("Must be an object.")
        type_ = (data or {}).get("type")
        schema = _DATA_LOADERS.get(type_) if isinstance(type_, str) else None
        if schema is None:
            return dict(value)  # the `type` field reports the problem
        return schema.load(value)


class EventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    error_messages = {"type": "Must be an object."}

    event_id = fields.UUID(required=True, data_key="eventId")
    type = fields.String(required=True, validate=validate.OneOf(list(DATA_SCHEMAS)))
    occurred_at = _moment(required=True, data_key="occurredAt")
    data = _EventData(required=True, metadata={
        "type": "object", "description": "The change, shaped by `type` (contract §4)"})

    @post_load
    def _event(self, data: dict[str, Any], **_: Any) -> Event:
        return Event(str(data["event_id"]), data["type"], epoch_ms(data["occurred_at"]),
                     data["data"])


def _batch_size(events: list[Any]) -> None:
    limit = DEFAULT_MAX_EVENTS
    if has_app_context():
        limit = int(current_app.config.get("MAX_EVENTS_PER_CALL", DEFAULT_MAX_EVENTS))
    if not 1 <= len(events) <= limit:
        raise ValidationError(f"Must hold 1 to {limit} events, not {len(events)}.")


def flatten(messages: Any, path: str = "") -> dict[str, Any]:
    """Nested marshmallow messages as {"events[3].data.priority": [...]}."""
    if not isinstance(messages, dict):
        return {path or "_schema": messages}
    flat: dict[str, Any] = {}
    for key, value in messages.items():
        if isinstance(key, int):
            child = f"{path}[{key}]"
        else:
            child = f"{path}.{key}" if path else str(key)
        flat.update(flatten(value, child))
    return flat


class EventBatchSchema(Schema):
    """`{"events": [...]}` with 1..MAX_EVENTS_PER_CALL events."""

    class Meta:
        unknown = RAISE

    error_messages = {"type": 'The body must be a JSON object: {"events": [...]}.'}
    events = fields.List(fields.Nested(EventSchema), required=True, validate=_batch_size)

    def handle_error(self, error: ValidationError, data: Any, *, many: bool, **kwargs: Any) -> None:
        raise ValidationError(flatten(error.messages)) from error


def load_events(body: Any) -> list[Event]:
    """Validate a POST /events body; raises marshmallow.ValidationError with flat paths."""
    return EventBatchSchema().load(body)["events"]
