"""POST /events: the ticket service's change events, durable in SQL before the 202 (contract §4)."""
from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from tally.auth.guard import require_roles
from tally.core import watermarks
from tally.core.clock import epoch_ms
from tally.core.model import SERVICE_ROLE
from tally.services import outbox
from tally.services.ingest import ingest
from tally.core.model import Event
from tally.http.schemas.events import EventBatchSchema
from tally.extensions import services
from tally.http import examples
from tally.http.bodies import Blueprint, storable_body
from tally.http.envelope import success
from tally.http.openapi import error_docs, header_refs
from tally.http.schemas.common import EnvelopeSchema

blp = Blueprint("events", __name__, url_prefix="/api/v2/ticketing",
                description="Change events from the ticket service")

ERRORS = {400: "Invalid header or body (nothing is written)",
          401: "Missing, expired or invalid token",
          403: "The caller lacks the ticket_service role", 404: "Unknown realm or tenant",
          413: "The body exceeds MAX_CONTENT_LENGTH (4 MiB)",
          415: "The body is not application/json",
          503: "The database is unavailable (nothing is written; retry)"}
document_errors = error_docs(blp, ERRORS)


class IngestDataSchema(Schema):
    accepted = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "events whose eventId was not seen within the redelivery horizon "
                       "(7 days by default): new ones, and redeliveries later than that, which "
                       "change nothing"})
    duplicates = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "eventIds redelivered within the redelivery horizon (no-ops)"})
    watermark = fields.String(required=True, metadata={
        "description": "The batch's position in the tenant's writes (also X-Count-Watermark): "
                       "send it as X-Min-Watermark with a count to see this batch counted. "
                       "Opaque, bound to the tenant; a batch that changed nothing gets the "
                       "tenant's current one", "example": "42.9f86d081"})


class IngestEnvelopeSchema(EnvelopeSchema):
    data = fields.Nested(IngestDataSchema, required=True)


@blp.route("/events")
class Events(MethodView):
    @require_roles(SERVICE_ROLE)
    @storable_body  # the body read by tally.http.bodies' rules: 413, 415, 400, then storable
    @document_errors
    @blp.arguments(EventBatchSchema, error_status_code=400, example=examples.EVENTS_BODY)
    @blp.response(202, IngestEnvelopeSchema, example=examples.INGESTED,
                  headers=header_refs("X-Count-Watermark"))
    def post(self, batch: dict[str, list[Event]]) -> tuple[dict[str, Any], dict[str, str]]:
        """Ingest change events; a redelivered eventId is a no-op."""
        svc, tenant = services(), g.principal.tenant_id
        result = ingest(svc.db, tenant, batch["events"], epoch_ms(svc.clock()))
        if result.high_water is not None:  # after the commit: the job must see the rows
            outbox.request_apply(svc, tenant, result.high_water)
        watermark = watermarks.encode(tenant, result.watermark)
        return (success({"accepted": result.accepted, "duplicates": result.duplicates,
                         "watermark": watermark}, "Events accepted"),
                {watermarks.HEADER: watermark})
