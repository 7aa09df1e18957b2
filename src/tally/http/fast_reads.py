"""The two polls answered in front of Flask: a warm badge and a warm sidebar count.

Every open tab polls the badge every few seconds and every agent's sidebar its counts; Flask's
per-request work (request context, routing, hooks, the Response object) cost more than the read
itself (docs/benchmarks.md). As Discourse answers its message-bus polls in a Rack middleware in
front of Rails, a poll whose every step is already known is answered here: headers that passed
the guard and still hold (Guard.passed), a query string and body whose loads are remembered
(the app's caches behind each Remembered), a role that allows the call (the views' COUNT_ROLES
and view_of), and warm counters. It calls the same services and the same renderers as the
Flask views, so the answer is the same bytes (tests/http/test_fast_reads.py holds both paths to
that).

Anything else returns None and Flask answers: the first request of a header set or of a query,
every error, a cold read (recomputed from SQL), the counter store down, a warm read below the
request's X-Min-Watermark (Flask waits for it), every other route.
"""
from __future__ import annotations

import io
import logging
from typing import Any, Callable

from flask import Flask
from werkzeug.http import parse_options_header

from tally.auth import guard
from tally.auth.guard import PLAIN_ACCEPTS
from tally.services import notifications
from tally.core.model import COUNT_ROLES, Principal
from tally.services.tickets import TicketCountService
from tally.core.visibility import view_of
from tally.errors import TallyError
from tally.http.views import notifications as badge
from tally.http.views import tickets
from tally.http.front import Answer
from tally.http.openapi import SUPPORT_HEADER
from tally.http.watermarks import MIN_ENVIRON, wanted

log = logging.getLogger("tally.http.fast_reads")

BADGE = guard.PREFIX + "/ticket/notification/count"
TICKET_COUNT = guard.PREFIX + "/ticket/count"
SUPPORT_ENVIRON = "HTTP_" + SUPPORT_HEADER["name"].upper().replace("-", "_")

Environ = dict[str, Any]


class FastReads:
    """`fast(environ)`: the Answer of a warm poll whose every step is known, else None."""

    def __init__(self, app: Flask):
        self.services = app.extensions["tally"]
        self.guard: guard.Guard = app.extensions[guard.EXTENSION]
        self.max_body: int | None = app.config.get("MAX_CONTENT_LENGTH")
        caches = self.services.caches
        self.badge_queries = badge.load_count_query.cache(caches)
        self.count_queries = tickets.load_query.cache(caches)
        self.count_bodies = tickets.load_body.cache(caches)
        self.routes: dict[tuple[str, str], Callable[[Environ, Principal], Answer | None]] = {
            ("GET", BADGE): self.badge, ("POST", TICKET_COUNT): self.ticket_count}

    def __call__(self, environ: Environ) -> Answer | None:
        route = self.routes.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        if route is None or environ.get("HTTP_ACCEPT", "").strip() not in PLAIN_ACCEPTS:
            return None
        principal = self.guard.passed((environ.get("HTTP_X_TENANTID"),
                                       environ.get("HTTP_REALMNAME"),
                                       environ.get("HTTP_AUTHORIZATION")))
        if principal is None or not principal.has_any(*COUNT_ROLES):
            return None
        try:
            return route(environ, principal)
        except TallyError:  # a 4xx, or the counter store down: Flask answers it as it does
            return None
        except Exception:  # noqa: BLE001 - a bug here must not cost the client its answer
            log.exception("fast read failed; Flask answers instead")
            return None

    def badge(self, environ: Environ, principal: Principal) -> Answer | None:
        query = self.badge_queries.get(_query_string(environ))
        if query is None:
            return None
        tenant = principal.tenant_id
        result = notifications.warm(self.services, tenant, principal.user_id)
        if result is None or _below(environ, tenant, result.watermark):
            return None
        status, headers, body = badge.count_answer(
            tenant, result, query["view"], badge.COUNT_MESSAGE, self.services.config.POLL_INTERVAL,
            environ.get("HTTP_IF_NONE_MATCH"), self.services.caches.rendered)
        return Answer(status, headers, body, BADGE, result.source)

    def ticket_count(self, environ: Environ, principal: Principal) -> Answer | None:
        query = self.count_queries.get(_query_string(environ))
        raw_body = self._body(environ) if query is not None else None
        if raw_body is None:
            return None
        mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
        body = self.count_bodies.get(b"%s\n%s" % (mimetype.encode(), raw_body))
        if body is None:
            return None
        view_of(principal, query["type"])  # the role's 403 for this type, as the view checks
        wanted_counts = tickets.count_query(self.services, principal, query, body,
                                            tickets.support_only(environ.get(SUPPORT_ENVIRON)))
        result = TicketCountService(self.services).warm(wanted_counts)
        if result is None or _below(environ, principal.tenant_id, result.watermark):
            return None
        status, headers, payload = tickets.count_answer(principal.tenant_id, result,
                                                        body["timezone"])
        return Answer(status, headers, payload, TICKET_COUNT, result.source)

    def _body(self, environ: Environ) -> bytes | None:
        """The body when it has a Content-Length within the limit (else None: Flask reads it),
        left readable again for Flask in case Flask answers after all."""
        length = environ.get("CONTENT_LENGTH", "")
        if not (length.isascii() and length.isdigit()) or environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        if self.max_body is not None and int(length) > self.max_body:
            return None
        data = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(data)
        return data


def _below(environ: Environ, tenant: str, watermark: int) -> bool:
    """Whether the request asks for a watermark beyond `watermark` (a malformed one raises the
    400 Flask answers)."""
    raw = environ.get(MIN_ENVIRON)
    return raw is not None and (wanted(tenant, raw) or 0) > watermark


def _query_string(environ: Environ) -> bytes:
    """The raw query string as werkzeug's request.query_string gives it."""
    return environ.get("QUERY_STRING", "").encode("latin-1")
