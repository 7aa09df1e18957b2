"""Filter endpoints: list the caller's visible filters, create a custom one, delete one's own."""
from __future__ import annotations

from typing import Any

from flask import g, url_for
from flask.views import MethodView

from tally.auth.guard import require_roles
from tally.core.model import ROLES
from tally.extensions import services
from tally.http import examples
from tally.http.schemas import filters as fs
from tally.http.bodies import Blueprint, storable_body
from tally.http.envelope import success
from tally.http.openapi import error_docs, header_refs

blp = Blueprint("filters", __name__, url_prefix="/api/v2/ticketing",
                description="Saved ticket filters: the system catalogue and users' custom filters")

ERRORS = {400: "Invalid header or body (details name the offending field or condition path)",
          401: "Missing, expired or invalid token",
          403: "The caller lacks a ticket role", 404: "Unknown realm or tenant"}
document_errors = error_docs(blp, ERRORS)
DELETE_ERRORS = {**ERRORS, 403: "The caller lacks a ticket role, or the filter is one they can "
                                "see but do not own (a system or someone else's shared filter)",
                 404: "Unknown realm or tenant, or no filter with this id visible to the caller"}


@blp.route("/filters")
class Filters(MethodView):
    @require_roles(*ROLES)
    @blp.response(200, fs.FilterListEnvelopeSchema, example=examples.FILTERS)
    @document_errors
    def get(self) -> dict[str, Any]:
        """The filters visible to the caller: system ones, their own, and shared ones."""
        principal = g.principal
        svc = services()
        items = svc.filter_catalog.list_visible(svc, principal.tenant_id, principal.user_id)
        return success({"items": items}, "Filters retrieved successfully")

    @require_roles(*ROLES)
    @storable_body
    @blp.arguments(fs.FilterBodySchema, error_status_code=400, example=examples.FILTER_BODY)
    @blp.response(201, fs.FilterEnvelopeSchema, example=examples.FILTER,
                  headers=header_refs("Location"))
    @document_errors
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Create a custom filter owned by the caller (private unless `shared`)."""
        principal = g.principal
        svc = services()
        created = svc.filter_catalog.create(svc, principal.tenant_id, principal.user_id,
                                            body["name"], body["color"], body["shared"],
                                            body["definition"])
        location = url_for("filters.FilterById", filter_id=created.id)
        return success(created, "Filter created successfully"), {"Location": location}


@blp.route("/filters/<string:filter_id>")
class FilterById(MethodView):
    @require_roles(*ROLES)
    @blp.response(200, fs.DeletedEnvelopeSchema, example=examples.DELETED)
    @error_docs(blp, DELETE_ERRORS)
    def delete(self, filter_id: str) -> dict[str, Any]:
        """Delete one of the caller's own custom filters."""
        principal = g.principal
        svc = services()
        deleted = svc.filter_catalog.delete(svc, principal.tenant_id, principal.user_id, filter_id)
        return success({"id": deleted, "deleted": True}, "Filter deleted successfully")
