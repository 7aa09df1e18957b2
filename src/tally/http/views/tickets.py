"""POST /ticket/count: sidebar counts per filter, within the caller's visibility."""
from __future__ import annotations

import json
from functools import wraps
from operator import attrgetter
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView

from tally.auth.guard import require_roles
from tally.core.clock import from_epoch_ms, iso_ms
from tally.core.visibility import VIEW_TYPES, view_of
from tally.core.model import COUNT_ROLES, Principal
from tally.services.tickets import TicketCountQuery, TicketCounts, TicketCountService
from tally.errors import InvalidFilterId, ValidationFailed
from tally.extensions import Services, services
from tally.http import examples, watermarks
from tally.http.schemas import tickets as ticket_schemas
from tally.http.bodies import Blueprint
from tally.http.envelope import Rendered, success_json
from tally.http.openapi import MIN_WATERMARK, SUPPORT_HEADER, error_docs, header_refs

blp = Blueprint("tickets", __name__, url_prefix="/api/v2/ticketing",
                description="Ticket counts per sidebar filter")
MESSAGE = "Ticket counts retrieved successfully"
ERRORS = {400: "Invalid header, query or body (details name each field)",
          403: "The token does not name the tenant, lacks a counting role (ticket_user, "
               "ticket_agent, ticket_admin: a ticket_service token counts nothing), or the role "
               "does not allow this `type` (type=agent needs ticket_agent or ticket_admin)",
          422: "A filter id (or templateProfileFilterId) the caller cannot use; "
               "details.invalidIds lists them"}
QUERY = ticket_schemas.TicketCountQuerySchema()
BODY = ticket_schemas.TicketCountBodySchema()
# What the query string and the body (with the Content-Type that decides whether it is JSON)
# loaded to: the same bytes load the same, so a sidebar's poll validates them once.
load_query = blp.remember(QUERY, lambda: request.query_string, attrgetter("count_queries"))
load_body = blp.remember(BODY, lambda: b"%s\n%s" % (
    request.mimetype.encode(), request.get_data(cache=True)), attrgetter("count_bodies"))


def support_only(raw: str | None) -> bool:
    """The `issupportrequest` header's value (None: absent) as a flag; anything else is a 400."""
    if raw is None or raw.strip().lower() == "false":
        return False
    if raw.strip().lower() == "true":
        return True
    raise ValidationFailed(details={SUPPORT_HEADER["name"]: ["must be true or false"]})


def count_query(svc: Services, principal: Principal, query: dict[str, Any],
                body: dict[str, Any], support: bool) -> TicketCountQuery:
    """What to count for loaded query and body: the requested filters and the profile resolved,
    or 422 naming every id the caller cannot use."""
    ids = list(dict.fromkeys(body["filter_ids"]))
    profile_id = body["template_profile_filter_id"]
    wanted = ids + ([profile_id] if profile_id is not None else [])
    found, invalid = svc.filter_catalog.resolve(svc, principal.tenant_id, principal.user_id,
                                                wanted)
    if invalid:
        raise InvalidFilterId(details={"invalidIds": list(dict.fromkeys(invalid))})
    profile = found[profile_id].definition.check_profile() if profile_id is not None else None
    return TicketCountQuery(principal, query["type"], {fid: found[fid] for fid in ids}, profile,
                            body["timezone"], support, profile_id)


def count_answer(tenant: str, result: TicketCounts, timezone: str) -> Rendered:
    """The answer's status, headers and body."""
    return Rendered.json(200, success_json(body_json(result, timezone), MESSAGE),
                         after=[("X-Count-Source", result.source),
                                watermarks.header(tenant, result),
                                ("Cache-Control", "private, no-cache")])


def check_view_type(func: Any) -> Any:
    """Before the query and body parsers: a valid `type` the caller's role does not allow is a
    403, which the contract orders before query and body validation (400)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        raw = request.args.get("type")
        if raw in VIEW_TYPES:  # anything else is the query schema's 400
            view_of(g.principal, raw)
        return func(*args, **kwargs)

    return wrapper


def body_json(result: Any, timezone: str) -> str:
    """The answer's `data`, written directly (`filterDetails` comes serialised with the plan):
    byte for byte what TicketCountsSchema dumps, as tests/http/test_count_bodies.py holds it."""
    dumps = json.dumps
    return (f'{{"counts":{dumps(result.counts, separators=(",", ":"))},'
            f'"filterDetails":{result.details_json},'
            f'"summary":{dumps(result.summary, separators=(",", ":"))},'
            f'"computedAt":"{iso_ms(from_epoch_ms(result.computed_at))}",'
            f'"timezone":{dumps(timezone)}}}')


@blp.route("/ticket/count", parameters=[SUPPORT_HEADER, MIN_WATERMARK])
class TicketCount(MethodView):
    @require_roles(*COUNT_ROLES)
    @check_view_type
    @blp.arguments(QUERY, location="query", error_status_code=400)  # its 400 before the body's
    @blp.arguments(BODY, error_status_code=400, example=examples.TICKET_COUNT_BODY)
    @blp.response(200, ticket_schemas.TicketCountEnvelopeSchema, example=examples.TICKET_COUNT,
                  headers=header_refs("X-Count-Source", "X-Count-Watermark", "Cache-Control"))
    @error_docs(blp, ERRORS)
    def post(self, query: dict[str, Any], body: dict[str, Any]) -> Response:
        """Counts for up to 200 filter ids, with filterDetails and summary (X-Count-Source)."""
        svc, tenant = services(), g.principal.tenant_id
        position = watermarks.wanted(tenant, request.headers.get(MIN_WATERMARK["name"]))
        wanted = count_query(svc, g.principal, query, body,
                             support_only(request.headers.get(SUPPORT_HEADER["name"])))
        counter = TicketCountService(svc)
        result = watermarks.at_least(svc, current_app, tenant, position, counter.count(wanted),
                                     lambda: counter.count(wanted), lambda: counter.sql(wanted))
        return count_answer(tenant, result, body["timezone"]).response()
