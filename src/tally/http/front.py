"""The front door: one WSGI middleware gives every request its id, latency, metrics and access line.

Installed around Flask by the factory (`app.wsgi_app = Front(app.wsgi_app, ...)`), so gunicorn's
`wsgi:app`, `flask --app wsgi` and `app.test_client()` all pass through it. Per request it sets
the client's address of a request that came through the edge (`forwarded_peer`), takes
the X-Request-ID header when it is a sane token (else makes one), leaves it in the environ
under tally.observability.logs.REQUEST_ID_ENVIRON, echoes it as the last header of every
response, times the request until its response starts, counts it once
(tally.observability.metrics, per process) and hands it to the access log's policy
(tally.observability.logs.AccessLog).

`fast` is a seam for answers that need no Flask: given the environ it returns an `Answer`, which
Front sends itself, byte for byte as Flask would send it (werkzeug's status line, the Answer's
headers, then X-Request-ID where Flask's path has it: last), or None to let Flask answer.
"""
from __future__ import annotations

from time import perf_counter
from typing import Any, Callable, Iterable, NamedTuple

from werkzeug.http import HTTP_STATUS_CODES

from tally.observability import metrics
from tally.observability.logs import (REQUEST_ID_ENVIRON, REQUEST_ID_HEADER, AccessLog,
                                      request_id_for)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
UNMATCHED = "unmatched"  # the route label of a request no route template matched
# The status line werkzeug writes for each code (Response._clean_status): "304 NOT MODIFIED".
_STATUS_LINES = {code: f"{code} {reason.upper()}" for code, reason in HTTP_STATUS_CODES.items()}


class Answer(NamedTuple):
    """A complete response a fast path built without Flask. Front never changes it, so one
    Answer may be sent many times."""

    status: int
    headers: list[tuple[str, str]]  # in Flask's order, without X-Request-ID (Front adds it)
    body: bytes
    route: str  # the route template, e.g. "/api/v2/ticketing/ticket/notification/count"
    source: str | None = None  # its X-Count-Source, for tally_count_reads_total


Fast = Callable[[Environ], "Answer | None"]


def status_line(code: int) -> str:
    """The status line werkzeug would send for `code`."""
    return _STATUS_LINES.get(code) or f"{code} UNKNOWN"


class Front:
    """Request id, timing, metrics and access log around a WSGI app (see the module docstring)."""

    def __init__(self, app: WSGIApp, access_log: AccessLog, fast: Fast | None = None,
                 pending: metrics.Pending = metrics.PENDING):
        self.app = app
        self.access_log = access_log
        self.fast = fast
        self._observe = pending.observe

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = perf_counter()
        if not environ.get("REMOTE_ADDR"):  # from the edge, over gunicorn's unix socket
            environ["REMOTE_ADDR"] = forwarded_peer(environ)
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        environ[REQUEST_ID_ENVIRON] = request_id
        if self.fast is not None:
            answer = self.fast(environ)
            if answer is not None:
                return self._send(answer, environ, start_response, request_id, started)
        recorded = False

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal recorded
            headers.append((REQUEST_ID_HEADER, request_id))
            if not recorded:
                recorded = True
                route = _flask_route(environ)
                source = _count_source(headers) if route in metrics.COUNT_ROUTES else None
                self._record(environ, int(status[:3]), perf_counter() - started, request_id,
                             route, source)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        except Exception:  # Flask re-raises only when propagating (testing); the server sends 500
            if not recorded:
                self._record(environ, 500, perf_counter() - started, request_id, UNMATCHED, None)
            raise

    def _send(self, answer: Answer, environ: Environ, start_response: StartResponse,
              request_id: str, started: float) -> Iterable[bytes]:
        """Send a fast path's Answer as werkzeug would: no body on HEAD, 1xx, 204 or 304."""
        status = answer.status
        self._record(environ, status, perf_counter() - started, request_id, answer.route,
                     answer.source)
        start_response(status_line(status), [*answer.headers, (REQUEST_ID_HEADER, request_id)])
        if status in (204, 304) or status < 200 or environ.get("REQUEST_METHOD") == "HEAD":
            return []
        return [answer.body]

    def _record(self, environ: Environ, status: int, seconds: float, request_id: str,
                route: str, source: str | None) -> None:
        self._observe(route, environ.get("REQUEST_METHOD", ""), status, seconds, source)
        if self.access_log.wants(status, seconds):
            self.access_log.write(environ, status, seconds, request_id, route)


def forwarded_peer(environ: Environ) -> str:
    """The address of the edge's client, for a request that came over gunicorn's unix socket.

    Only the edge (tally.edge) reaches that socket, and it sets X-Forwarded-For itself, passing
    on no client's own (Caddy trusts no proxy unless told): its last entry is the address that
    connected to the edge. A request over TCP has REMOTE_ADDR, and its X-Forwarded-For is never
    read."""
    return environ.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()


def _flask_route(environ: Environ) -> str:
    """The template of the rule Flask matched, read from the Request werkzeug keeps in the
    environ until Flask's request context ends (after start_response), or "unmatched"."""
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)  # None: not Flask's
    return rule.rule if rule is not None else UNMATCHED


def _count_source(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "x-count-source":
            return value
    return None
