"""GET /ticket/notification/stream: the badge as Server-Sent Events (contract §3).

Each `count` event carries the count endpoint's `data` and, as its `id`, `<etag>:<watermark>`:
that body's ETag (the counter version) and the tenant watermark the counts reflect (as
X-Count-Watermark). An event is sent on connect and whenever the version moves; a reconnecting
client that sends `Last-Event-ID` gets an event at once only if the counts changed meanwhile
(it already shows that version otherwise), so nothing is missed and nothing is sent twice, and
the counts it is sent reflect at least the watermark it resumes from (as X-Min-Watermark, which
the stream also takes: a client that just wrote may open it with its write's watermark).
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
from tally.core import watermarks as wire
from flask.views import MethodView

from tally.auth.guard import require_roles
from tally.core.model import COUNT_ROLES, CountResult
from tally.errors import StreamsExhausted
from tally.services import notifications
from tally.extensions import Services, services
from tally.http.fanout import Subscription, hub
from tally.http.schemas import common as schemas
from tally.http.api import render
from tally.http import watermarks
from tally.http.bodies import Blueprint
from tally.http.openapi import MIN_WATERMARK, error_docs
from tally.http.views.notifications import count_at_least, count_data
from tally.observability.logs import request_context
from tally.observability.metrics import SSE_EVENTS

log = logging.getLogger("tally.http.views.stream")
blp = Blueprint("stream", __name__, url_prefix="/api/v2/ticketing",
                description="The badge pushed as Server-Sent Events")

RETRY_MS = 3000  # how long an EventSource waits before it reconnects
ERRORS = {400: "Invalid header or query", 401: "Missing, expired or invalid token",
          403: "The caller lacks a ticket role", 404: "Unknown realm or tenant",
          503: "This server holds as many other users' streams as it may (Retry-After)"}


Snapshot = tuple[str, str, int]  # data (JSON), version (the ETag), watermark


def snapshot_of(svc: Services, result: CountResult, view: str) -> Snapshot:
    """A count as the count endpoint's `data` (JSON), its version (the ETag) and watermark."""
    return (*count_data(view, result.value, svc.caches.rendered), result.watermark)


def snapshot(svc: Services, tenant: str, user: str, view: str) -> Snapshot:
    return snapshot_of(svc, notifications.count(svc, tenant, user), view)


def resume_point(tenant: str, last_event_id: str | None) -> tuple[str | None, int | None]:
    """A Last-Event-ID as the version the client shows and the watermark it had (None for an
    id without one: sent before watermarks); a malformed watermark is a 400."""
    if last_event_id is None or ":" not in last_event_id:
        return last_event_id, None
    version, watermark = last_event_id.split(":", 1)
    return version, wire.decode(tenant, watermark, "Last-Event-ID")


def event(tenant: str, version: str, watermark: int, data: str) -> str:
    SSE_EVENTS.inc()
    return (f"id: {version}:{wire.encode(tenant, watermark)}\nevent: count\n"
            f"data: {data}\n\n")


def events(svc: Services, subscription: Subscription, who: tuple[str, str], view: str,
           first: Snapshot, last_seen: str | None,
           context: dict[str, Any]) -> Iterator[str]:
    """The stream's body: retry hint, first event (unless already seen), then changes.

    It runs after the view returned, outside the request context (each stream holds its own
    thread, so nothing here may rely on flask's globals); its log lines carry the request's
    id, tenant and route explicitly (`context`).
    """
    heartbeat = float(svc.config.STREAM_HEARTBEAT_SECONDS)
    deadline = time.monotonic() + float(svc.config.STREAM_MAX_SECONDS)
    tenant, user = who
    data, version, watermark = first
    sent, failing = 0, False
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if version != last_seen:
            yield event(tenant, version, watermark, data)
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
                data, version, watermark = snapshot(svc, tenant, user, view)
            except Exception as error:  # the stream outlives a failed read; the next wake retries
                if not failing:  # once per outage, not at every heartbeat
                    log.warning("stream read failed: %s", type(error).__name__, extra=context)
                failing = True
                yield ": keep-alive\n\n"
                continue
            failing = False
            if version != last_seen:
                yield event(tenant, version, watermark, data)
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


@blp.route("/ticket/notification/stream", parameters=[MIN_WATERMARK])
class NotificationStream(MethodView):
    @require_roles(*COUNT_ROLES)
    @blp.arguments(schemas.CountQuerySchema, location="query", error_status_code=400)
    @blp.response(200, description="text/event-stream: `count` events whose data is the count "
                  "endpoint's data and whose id is `<ETag>:<watermark>` (the watermark the counts "
                  "reflect, as X-Count-Watermark); send Last-Event-ID to resume: the first "
                  "event then reflects at least that watermark",
                  content_type="text/event-stream")
    @error_docs(blp, ERRORS)
    def get(self, args: dict[str, Any]) -> Response:
        """The caller's notification counts, pushed on connect and on every change."""
        who, svc, view = (g.principal.tenant_id, g.principal.user_id), services(), args["view"]
        tenant = who[0]
        last_seen, resumed = resume_point(tenant, request.headers.get("Last-Event-ID"))
        asked = watermarks.wanted(tenant, request.headers.get(MIN_WATERMARK["name"]))
        position = max((p for p in (resumed, asked) if p is not None), default=None)
        subscription = hub(current_app._get_current_object()).open(
            notifications.changes_channel(*who), peer=request.environ.get("gunicorn.socket"))
        try:
            first = snapshot_of(svc, count_at_least(svc, *who, position), view)
        except BaseException:
            subscription.close()
            raise
        body = events(svc, subscription, who, view, first, last_seen, request_context())
        response = Response(body, mimetype="text/event-stream")
        response.call_on_close(subscription.close)
        response.headers["Cache-Control"] = "private, no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # proxies must not hold events back
        return response
