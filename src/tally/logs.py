"""Structured logs: one JSON object per line, with the request id, tenant and route of a request.

Every process (web, worker, scheduler, CLI) logs through `configure`. A request's id comes from
its `X-Request-ID` header when that is a sane token, else it is generated; it is echoed in the
response. Tokens never reach a log line: the request log names the route template, not the raw
path or headers, and a last filter masks anything shaped like a bearer token or a JWT.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from tally.auth.tokens import canonical_uuid
from tally.clock import iso_ms

log = logging.getLogger("tally.http.request")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A bearer credential or anything shaped like a JWT (three base64url parts, the first '{"…').
SECRET = re.compile(r"(?i)(bearer\s+)\S+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Attributes of every LogRecord; anything else a caller passed in `extra=` joins the JSON object.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
_CONTEXT = ("request_id", "tenant", "route")


def redact(text: str) -> str:
    """`text` with bearer credentials and JWT-shaped strings masked."""
    return SECRET.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    """ts, level, logger, msg, the request's id/tenant/route, then any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_ms(datetime.fromtimestamp(record.created, tz=timezone.utc)),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name in _CONTEXT:
            entry[name] = getattr(record, name, None)
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name not in entry:
                entry[name] = value
        if record.exc_info:
            # The type only: a traceback can quote request data, and operators get the location.
            error = record.exc_info[1]
            entry["error"] = type(error).__name__ if error is not None else None
            entry["where"] = f"{record.pathname}:{record.lineno}"
        return json.dumps(entry, default=str)


class RequestContext(logging.Filter):
    """Adds the current request's id, tenant and route to every record (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id")
            record.tenant = _tenant()
            record.route = _route()
        return True


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is at emit time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def json_handler() -> logging.Handler:
    """A stderr handler writing JSON lines with request context (also used by gunicorn)."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContext())
    return handler


def configure(level: int = logging.INFO) -> None:
    """Make the root logger write JSON lines to stderr; idempotent (one handler however often)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        root.addHandler(json_handler())


# -- per request -----------------------------------------------------------------------------------
def _tenant() -> str | None:
    principal = g.get("principal")
    if principal is not None:
        return principal.tenant_id
    return canonical_uuid(request.headers.get("x-tenantid"))


def _route() -> str:
    """The matched route's template (never the raw path, which may carry ids), or 'unmatched'."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def request_context() -> dict[str, str | None]:
    """The current request's id, tenant and route, for `extra=` on lines logged after it ended
    (a stream's body runs outside the request context)."""
    if not has_request_context():
        return {}
    return {"request_id": g.get("request_id"), "tenant": _tenant(), "route": _route()}


def install(app: Flask) -> None:
    """Give every request an id (first of the before-request hooks) and log one line per request."""

    def start() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    def finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or ""
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        log.info("%s %s %s", request.method, _route(), response.status_code,
                 extra={"method": request.method, "status": response.status_code,
                        "duration_ms": duration_ms})
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request(finish)
