"""The contract's success and error bodies."""
from __future__ import annotations

import json
from typing import Any, NamedTuple, Sequence

from flask import Response

from tally.core.clock import iso_ms, utc_now


def success(data: Any, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True}
    if message is not None:
        body["message"] = message
    body["data"] = data
    body["timestamp"] = iso_ms(utc_now())
    return body


def success_json(data_json: str, message: str) -> str:
    """`success` as JSON text around data already serialised (the hot endpoints' bodies)."""
    return (f'{{"success":true,"message":{json.dumps(message)},"data":{data_json},'
            f'"timestamp":"{iso_ms(utc_now())}"}}')


def failure(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "details": details},
            "timestamp": iso_ms(utc_now())}


class Rendered(NamedTuple):
    """A finished answer: status, headers in the order sent, body. The hot endpoints build one,
    and the Flask view and the WSGI fast path (tally.http.fast_reads) both send it as it is."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def json(cls, status: int, text: str, before: Sequence[tuple[str, str]] = (),
             after: Sequence[tuple[str, str]] = ()) -> "Rendered":
        """A JSON body: `before`, Content-Type and Content-Length, then `after` (the order in
        which werkzeug sends headers set before and after the body)."""
        body = text.encode()
        return cls(status, [*before, ("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *after], body)

    def response(self) -> Response:
        return Response(self.body, self.status, self.headers)
