"""Structured logs: one JSON object per line, with the request id, tenant and route of a request.

Every process (web, worker, scheduler, CLI) logs through `configure`; in development
(TALLY_ENV=development, what `make run` uses) the same records are written as readable text lines
instead (TextFormatter). A request's id comes from its `X-Request-ID` header when that is a sane
token, else it is generated (`request_id_for`); the front door (tally.http.front) puts it in the
WSGI environ and echoes it in the response, and `AccessLog` decides which requests get an access
line. Tokens never reach a log line: the access line names the route template, not the raw path or
headers, and a last filter masks anything shaped like a bearer token or a JWT.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from flask import g, has_request_context, request

from tally.core.clock import iso_ms
from tally.core.model import canonical_uuid

log = logging.getLogger("tally.http.request")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_ENVIRON = "tally.request_id"  # where the front door leaves a request's id
# 4xx statuses the access log leaves to the sample: expected noise at the volume of polls (an
# expired token, a missing role, an unknown tenant or path). /metrics counts every one of them.
QUIET_STATUSES = frozenset({401, 403, 404})
# A bearer credential or anything shaped like a JWT (three base64url parts, the first '{"…').
SECRET = re.compile(r"(?i)(bearer\s+)\S+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Attributes of every LogRecord; anything else a caller passed in `extra=` joins the JSON object.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
_CONTEXT = ("request_id", "tenant", "route")


def redact(text: str) -> str:
    """`text` with bearer credentials and JWT-shaped strings masked."""
    return SECRET.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed in `extra=` (and RequestContext added)."""
    return {name: value for name, value in vars(record).items() if name not in _RECORD_FIELDS}


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
        for name, value in _extras(record).items():
            entry.setdefault(name, value)
        if record.exc_info:
            # The type only: a traceback can quote request data, and operators get the location.
            error = record.exc_info[1]
            entry["error"] = type(error).__name__ if error is not None else None
            entry["where"] = f"{record.pathname}:{record.lineno}"
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """A developer's line: local time, level, logger, message, then the `extra=` fields the
    message does not already say, as key=value (the request id only on errors)."""

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        shown = [f"{name}={value}" for name, value in _extras(record).items()
                 if value is not None and name not in _CONTEXT and str(value) not in message]
        if record.levelno >= logging.WARNING and getattr(record, "request_id", None):
            shown.append(f"request_id={record.request_id}")
        if record.exc_info:
            error = record.exc_info[1]
            shown.append(f"error={type(error).__name__} at {record.pathname}:{record.lineno}")
        tail = f"  ({redact(', '.join(shown))})" if shown else ""
        return f"{stamp} {record.levelname:<7} {record.name}: {message}{tail}"


class RequestContext(logging.Filter):
    """Adds the current request's id, tenant and route to every record logged in one (None
    outside one), unless the line names them itself (`extra=`, as the access line does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = request.environ.get(REQUEST_ID_ENVIRON)
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


def handler(readable: bool = False) -> logging.Handler:
    """A stderr handler with request context writing JSON lines, or text lines when `readable`
    (development); gunicorn's logconfig_dict builds its handler with this too."""
    built = _StderrHandler()
    built.setFormatter(TextFormatter() if readable else JsonFormatter())
    built.addFilter(RequestContext())
    return built


def configure(level: int = logging.INFO, readable: bool = False) -> None:
    """Make the root logger write JSON lines (text lines when `readable`) to stderr; idempotent:
    one handler however often, in the format of the latest call (one process, one app)."""
    root = logging.getLogger()
    root.setLevel(level)
    ours = [existing for existing in root.handlers if isinstance(existing, _StderrHandler)]
    if ours:
        ours[0].setFormatter(TextFormatter() if readable else JsonFormatter())
    else:
        root.addHandler(handler(readable))


# -- per request -----------------------------------------------------------------------------------
def request_id_for(offered: str | None) -> str:
    """`offered` (an X-Request-ID header) when it is a sane token, else a new random id."""
    if offered is not None and REQUEST_ID.fullmatch(offered):
        return offered
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


def tenant_of(environ: Mapping[str, Any]) -> str | None:
    """The tenant a request names in its x-tenantid header (the guard's tenant when it passed)."""
    return canonical_uuid(environ.get("HTTP_X_TENANTID"))


def _tenant() -> str | None:
    principal = g.get("principal")
    if principal is not None:
        return principal.tenant_id
    return tenant_of(request.environ)


def _route() -> str:
    """The matched route's template (never the raw path, which may carry ids), or 'unmatched'."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def request_context() -> dict[str, str | None]:
    """The current request's id, tenant and route, for `extra=` on lines logged after it ended
    (a stream's body runs outside the request context)."""
    if not has_request_context():
        return {}
    return {"request_id": request.environ.get(REQUEST_ID_ENVIRON), "tenant": _tenant(),
            "route": _route()}


class AccessLog:
    """Which answered requests get an access line, and the line.

    Logged: every status ≥ 500, every 4xx but QUIET_STATUSES, every request slower than
    `slow_ms` (time until its response started), and of the rest a random `sample_rate` share
    (0: none, 1: all). Counts belong in /metrics; the decision is made before anything is built.
    """

    def __init__(self, slow_ms: float, sample_rate: float,
                 draw: Callable[[], float] = random.random):
        self.slow_seconds = slow_ms / 1000
        self.sample_rate = sample_rate
        self._draw = draw

    def wants(self, status: int, seconds: float) -> bool:
        if status >= 400 and (status >= 500 or status not in QUIET_STATUSES):
            return True
        if seconds > self.slow_seconds:
            return True
        rate = self.sample_rate
        return rate >= 1 or (rate > 0 and self._draw() < rate)

    def write(self, environ: Mapping[str, Any], status: int, seconds: float, request_id: str,
              route: str) -> None:
        """One line: method, route and status as text; method, status, duration_ms, request_id,
        tenant and route as fields."""
        if not log.isEnabledFor(logging.INFO):
            return
        method = environ.get("REQUEST_METHOD", "")
        log.info("%s %s %s", method, route, status,
                 extra={"method": method, "status": status,
                        "duration_ms": round(seconds * 1000, 2), "request_id": request_id,
                        "tenant": tenant_of(environ), "route": route})
