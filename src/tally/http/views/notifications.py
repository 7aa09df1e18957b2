"""Notification endpoints: the badge count (ETag, 304), the list, and marking as read."""
from __future__ import annotations

import hashlib
import json
import logging
from operator import attrgetter
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView
from werkzeug.http import parse_etags

from tally import jobs
from tally.auth.guard import require_roles
from tally.core.clock import epoch_ms
from tally.services import notifications
from tally.core.cache import Cache
from tally.core.model import COUNT_ROLES, ROLES, CountResult, NotificationCounts
from tally.errors import RebuildBusy, StoreUnavailable
from tally.services import ingest, outbox
from tally.extensions import Services, services
from tally.http import examples, watermarks
from tally.http.schemas import common as schemas
from tally.http.bodies import Blueprint, storable_body
from tally.http.openapi import COUNT_HEADERS, IF_NONE_MATCH, MIN_WATERMARK, error_docs
from tally.http.envelope import Rendered, success, success_json

log = logging.getLogger("tally.http.views.notifications")
blp = Blueprint("notifications", __name__, url_prefix="/api/v2/ticketing",
                description="The user's ticket notifications: badge counts, list, read state")

COUNT_MESSAGE = "Notification count retrieved successfully"
ERRORS = {400: "Invalid header, query or body", 401: "Missing, expired or invalid token",
          403: "The caller lacks a ticket role (a ticket_service token counts nothing)",
          404: "Unknown realm or tenant"}
document_errors = error_docs(blp, ERRORS)
COUNT_QUERY = schemas.CountQuerySchema()
# Every tab polls with the same few query strings: each is validated once per app.
load_count_query = blp.remember(COUNT_QUERY, lambda: request.query_string,
                                attrgetter("badge_queries"))


def count_data(view: str, counts: NotificationCounts,
               rendered: Cache[tuple[Any, ...], tuple[str, str]]) -> tuple[str, str]:
    """A count's `data` as JSON (byte for byte what schemas.NotificationCountsSchema, or
    MinimalCountSchema for view=minimal, dumps, sorted: tests/http/test_count_bodies.py) and its
    version: a hash of the view and that JSON, never of a timestamp (the ETag, and the SSE
    event id).

    Rendered once per distinct (view, counts) while the app's cache `rendered` holds it: every
    open tab of a user polls the same counts, which change far less often than they are read."""
    key = (view, counts.total, counts.unread, counts.last_updated,
           tuple(counts.by_type.items()), tuple(counts.by_priority.items()))
    found = rendered.get(key)
    return found if found is not None else rendered.put(key, _render(view, counts))


def _render(view: str, counts: NotificationCounts) -> tuple[str, str]:
    if view == "minimal":
        data: dict[str, Any] = {"count": counts.unread}
    else:
        data = {"total": counts.total, "unread": counts.unread, "byType": dict(counts.by_type),
                "byPriority": dict(counts.by_priority),
                "lastUpdated": schemas.iso_or_none(counts.last_updated)}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(f"{view}:{text}".encode()).hexdigest()[:32]


def count_answer(tenant: str, result: CountResult, view: str, message: str, poll_interval: int,
                 if_none_match: str | None,
                 rendered: Cache[tuple[Any, ...], tuple[str, str]]) -> Rendered:
    """The count's status, headers and body: 304 without a body when `if_none_match` (the
    If-None-Match header, None for an unconditional answer) names its ETag or `*`. The ETag
    versions the counts only: a 304 may carry a newer X-Count-Watermark than the 200 it stands
    for (the same counts, known to hold up to a later write)."""
    data, etag = count_data(view, result.value, rendered)
    headers = [("ETag", f'"{etag}"'), ("X-Count-Source", result.source),
               watermarks.header(tenant, result),
               ("Cache-Control", "private, no-cache"), ("X-Poll-Interval", str(poll_interval))]
    if if_none_match and parse_etags(if_none_match).contains_weak(etag):
        return Rendered(304, headers, b"")
    return Rendered.json(200, success_json(data, message), headers)


def count_response(result: CountResult, view: str = "full", message: str = COUNT_MESSAGE,
                   conditional: bool = True) -> Response:
    """The count as a Flask response (count_answer for the current request)."""
    svc = services()
    return count_answer(g.principal.tenant_id, result, view, message, svc.config.POLL_INTERVAL,
                        request.headers.get("If-None-Match") if conditional else None,
                        svc.caches.rendered).response()


def count_at_least(svc: Services, tenant: str, user: str, position: int | None) -> CountResult:
    """The user's counts, reflecting at least watermark `position` when one is given (waiting
    for the worker up to the bound, else from SQL: tally.http.watermarks)."""
    return watermarks.at_least(svc, current_app._get_current_object(), tenant, position,
                               notifications.count(svc, tenant, user),
                               lambda: notifications.count(svc, tenant, user),
                               lambda: notifications.sql_only(svc, tenant, user))


def mark_read(svc: Services, tenant: str, user: str, ids: list[str] | None) -> CountResult:
    """Mark notifications read in SQL, apply the delta now (read-your-writes), return the counts."""
    at = epoch_ms(svc.clock())
    outbox_id = svc.db.write_retrying(
        lambda session: ingest.mark_notifications_read(session, tenant, user, ids, at=at))
    if outbox_id is None:
        return notifications.count(svc, tenant, user)
    try:
        outbox.apply_pending(svc, tenant, ids=[outbox_id])
    except (StoreUnavailable, RebuildBusy) as error:
        log.warning("read of %s/%s not applied now (%s); queued", tenant, user, error.message)
        jobs.enqueue_apply(svc.queue_redis, tenant, outbox_id)
        return notifications.sql_only(svc, tenant, user)
    return notifications.count(svc, tenant, user)


@blp.route("/ticket/notification/count", parameters=[IF_NONE_MATCH, MIN_WATERMARK])
class NotificationCount(MethodView):
    @require_roles(*COUNT_ROLES)
    @blp.arguments(COUNT_QUERY, location="query", error_status_code=400)
    @blp.response(200, schemas.CountEnvelopeSchema,
                  description="view=full (default); view=minimal answers data: {count: unread}",
                  headers=COUNT_HEADERS, example=examples.NOTIFICATION_COUNT)
    @blp.alt_response(304, description="Unchanged since the ETag in If-None-Match (no body)",
                      headers=COUNT_HEADERS)
    @document_errors
    def get(self, query: dict[str, Any]) -> Response:
        """The caller's notification counts (the badge)."""
        tenant = g.principal.tenant_id
        position = watermarks.wanted(tenant, request.headers.get(MIN_WATERMARK["name"]))
        result = count_at_least(services(), tenant, g.principal.user_id, position)
        return count_response(result, query["view"])


@blp.route("/ticket/notification/list")
class NotificationList(MethodView):
    @require_roles(*ROLES)
    @blp.arguments(schemas.ListQuerySchema, location="query", error_status_code=400)
    @blp.response(200, schemas.ListEnvelopeSchema, example=examples.NOTIFICATION_LIST)
    @document_errors
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The caller's notifications, newest first, a page at a time."""
        principal = g.principal
        page = notifications.list_page(services(), principal.tenant_id, principal.user_id,
                                       args["limit"], unread=args["unread"], type_=args["type"],
                                       after=args["cursor"])
        return success(page, "Notifications retrieved successfully")


@blp.route("/ticket/notification/read")
class NotificationRead(MethodView):
    @require_roles(*COUNT_ROLES)
    @storable_body
    @blp.arguments(schemas.ReadBodySchema, error_status_code=400, example=examples.READ_BODY)
    @blp.response(200, schemas.CountEnvelopeSchema, headers=COUNT_HEADERS,
                  example=dict(examples.NOTIFICATION_COUNT, message="Notifications marked as read"))
    @document_errors
    def post(self, body: dict[str, Any]) -> Response:
        """Mark the given notifications (or all) read; answers the new counts."""
        principal = g.principal
        result = mark_read(services(), principal.tenant_id, principal.user_id, body.get("ids"))
        return count_response(result, message="Notifications marked as read", conditional=False)
