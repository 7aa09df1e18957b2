"""GET /ticket/notification/stream: the badge as Server-Sent Events (contract §3).

Each `count` event carries the count endpoint's `data` and, as its `id`, that body's ETag (the
counter version). An event is sent on connect and whenever the version moves; a reconnecting
client that sends `Last-Event-ID` gets an event at once only if the counts changed meanwhile
(it already shows that version otherwise), so nothing is missed and nothing is sent twice.
Comment lines keep idle connections open; a stream ends after STREAM_MAX_SECONDS (the client
reconnects, which re-checks its token), when its client closes the connection (noticed from the
socket at once, tally.http.hangups), when a newer stream of its user replaces it at a bound
(tally.http.fanout) or when its process shuts down.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from flask import Response, current_app, g, request
from flask.views import MethodView

from tally.auth.guard import require_roles
from tally.core.model import COUNT_ROLES
from tally.errors import StreamsExhausted
from tally.services import notifications
from tally.extensions import Services, services
from tally.http.fanout import Subscription, hub
from tally.http.schemas import common as schemas
from tally.http.api import render
from tally.http.bodies import Blueprint
from tally.http.openapi import error_docs
from tally.http.views.notifications import count_data
from tally.observability.logs import request_context
from tally.observability.metrics import SSE_EVENTS

log = logging.getLogger("tally.http.views.stream")
blp = Blueprint("stream", __name__, url_prefix="/api/v2/ticketing",
                description="The badge pushed as Server-Sent Events")

RETRY_MS = 3000  # how long an EventSource waits before it reconnects
ERRORS = {400: "Invalid header or query", 401: "Missing, expired or invalid token",
          403: "The caller lacks a ticket role", 404: "Unknown realm or tenant",
          503: "This server holds as many other users' streams as it may (Retry-After)"}


def snapshot(svc: Services, tenant: str, user: str, view: str) -> tuple[str, str]:
    """The counts as the count endpoint's `data` (JSON) and their version (the ETag)."""
    return count_data(view, notifications.count(svc, tenant, user).value)


def event(version: str, data: str) -> str:
    SSE_EVENTS.inc()
    return f"id: {version}\nevent: count\ndata: {data}\n\n"


def events(svc: Services, subscription: Subscription, who: tuple[str, str], view: str,
           first: tuple[str, str], last_seen: str | None,
           context: dict[str, Any]) -> Iterator[str]:
    """The stream's body: retry hint, first event (unless already seen), then changes.

    It runs after the view returned, outside the request context (each stream holds its own
    thread, so nothing here may rely on flask's globals); its log lines carry the request's
    id, tenant and route explicitly (`context`).
    """
    heartbeat = float(svc.config.STREAM_HEARTBEAT_SECONDS)
    deadline = time.monotonic() + float(svc.config.STREAM_MAX_SECONDS)
    tenant, user = who
    data, version = first
    sent, failing = 0, False
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if version != last_seen:
            yield event(version, data)
            sent, last_seen = sent + 1, version
        while not subscription.ending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if not subscription.wait(min(heartbeat, remaining)) and not subscription.stale:
                yield ": keep-alive\n\n"
                continue
            if subscription.ending:
                return
            try:
                data, version = snapshot(svc, tenant, user, view)
            except Exception as error:  # the stream outlives a failed read; the next wake retries
                if not failing:  # once per outage, not at every heartbeat
                    log.warning("stream read failed: %s", type(error).__name__, extra=context)
                failing = True
                yield ": keep-alive\n\n"
                continue
            failing = False
            if version != last_seen:
                yield event(version, data)
                sent, last_seen = sent + 1, version
            else:
                yield ": keep-alive\n\n"
    finally:
        subscription.close()
        log.info("stream closed after %d event(s)", sent, extra={**context, "events": sent})


@blp.errorhandler(StreamsExhausted)
def _refused(error: StreamsExhausted) -> Response:
    """A stream refused at a bound: the contract's envelope plus when to try again."""
    response = render(error.http_status, error.code, error.message, error.details)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@blp.route("/ticket/notification/stream")
class NotificationStream(MethodView):
    @require_roles(*COUNT_ROLES)
    @blp.arguments(schemas.CountQuerySchema, location="query", error_status_code=400)
    @blp.response(200, description="text/event-stream: `count` events whose data is the count "
                  "endpoint's data and whose id is its ETag; send Last-Event-ID to resume",
                  content_type="text/event-stream")
    @error_docs(blp, ERRORS)
    def get(self, args: dict[str, Any]) -> Response:
        """The caller's notification counts, pushed on connect and on every change."""
        who, svc, view = (g.principal.tenant_id, g.principal.user_id), services(), args["view"]
        subscription = hub(current_app._get_current_object()).open(
            notifications.changes_channel(*who), peer=request.environ.get("gunicorn.socket"))
        try:
            first = snapshot(svc, *who, view)
        except BaseException:
            subscription.close()
            raise
        body = events(svc, subscription, who, view, first, request.headers.get("Last-Event-ID"),
                      request_context())
        response = Response(body, mimetype="text/event-stream")
        response.call_on_close(subscription.close)
        response.headers["Cache-Control"] = "private, no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # proxies must not hold events back
        return response
