"""Wire schemas of the filters resource: the create body, a listed filter, the envelopes."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_dump, post_load, validate, \
    validates_schema

from tally.core.conditions import parse_definition
from tally.errors import DefinitionError
from tally.http.fields import StrictBoolean
from tally.http.schemas.common import EnvelopeSchema
from tally.http.schemas.tickets import FILTER_TYPES

COLOR = r"^#[0-9A-Fa-f]{6}$"
OPTIONAL = ("color", "conditions", "shared")


def _not_blank(value: str) -> None:
    if value and not value.strip():  # empty is Length's to report
        raise ValidationError("The name must not be blank.")


class FilterBodySchema(Schema):
    """POST /filters: a name, an optional #RRGGBB color and shared flag, and the definition.

    A definition outside the condition language is reported under its own path, e.g.
    `{"conditions.all[0].op": ["'like' is not one of eq, ne, ..."]}`; `data["definition"]` is
    the parsed `Definition` once the body is valid.
    """

    name = fields.String(required=True, validate=[validate.Length(1, 200), _not_blank],
                         metadata={"example": "VIP tickets"})
    color = fields.String(load_default=None, validate=validate.Regexp(
        COLOR, error="The color must be #RRGGBB, e.g. #3B82F6."), metadata={"example": "#3B82F6"})
    shared = StrictBoolean(load_default=False, metadata={
        "description": "true: visible to every user of the tenant"})
    conditions = fields.Raw(required=True, metadata={
        "type": "object", "example": {"all": [{"field": "tags", "op": "contains",
                                               "value": "vip"}]}})

    @validates_schema(skip_on_field_errors=False)
    def _definition(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "conditions" not in data:
            return
        try:
            parse_definition(data["conditions"])
        except DefinitionError as error:
            raise ValidationError(error.reason, error.path) from None

    @post_load
    def _parse(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["definition"] = parse_definition(data.pop("conditions"))
        return data


class FilterItemSchema(Schema):
    """One filter as GET /filters lists it; absent optionals are left out, not null."""

    id = fields.String(required=True, metadata={"example": "a7069dca-b9b1-4bf5-9a41-20dd75bf6f62"})
    name = fields.String(required=True, metadata={"example": "VIP tickets"})
    type = fields.String(required=True, metadata={"enum": list(FILTER_TYPES)})
    color = fields.String(metadata={"example": "#3B82F6"})
    conditions = fields.Function(lambda item: item.definition.to_obj(),
                                 metadata={"type": "object"})
    shared = fields.Function(lambda item: None if item.is_system else item.shared,
                             metadata={"type": "boolean"})

    @post_dump
    def _omit_absent(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items()
                if key not in OPTIONAL or value is not None}


class FilterListSchema(Schema):
    items = fields.List(fields.Nested(FilterItemSchema), required=True)


class DeletedSchema(Schema):
    id = fields.String(required=True)
    deleted = fields.Boolean(required=True)


class FilterListEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(FilterListSchema, required=True)


class FilterEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(FilterItemSchema, required=True)


class DeletedEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(DeletedSchema, required=True)
