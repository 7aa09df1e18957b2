"""The benchmark's rulers: a bare Flask app and a raw WSGI callable answering constant bytes.

`make bench` divides tally's req/s by what a user's own minimal Flask app serves under the same
gunicorn settings: one route, no hooks or extensions, a constant body of the same size as the
tally response it is compared with, `Content-Type: application/json`. The raw WSGI callable
answers the same bytes without Flask at all, so its row shows the server's own limit.

Both are served by gunicorn (`-c config/gunicorn.conf.py bench.bare:app`, or `bench.bare:raw`);
the size and the route's path are read once at import from BENCH_BARE_BYTES and BENCH_BARE_PATH,
so a request costs nothing beyond what such an app pays: routing, reading a POST body (as tally
reads its body) and writing the response.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from flask import Flask, Response, request

SIZE_VARIABLE, PATH_VARIABLE = "BENCH_BARE_BYTES", "BENCH_BARE_PATH"
CONTENT_TYPE = "application/json"
_HEAD, _TAIL = b'{"pad":"', b'"}'
MIN_JSON_BYTES = len(_HEAD) + len(_TAIL)

Wsgi = Callable[[dict, Callable], Iterable[bytes]]


def body(size: int) -> bytes:
    """A JSON object of exactly `size` bytes, or no body at all for 0 (as a 304 sends)."""
    if size == 0:
        return b""
    if size < MIN_JSON_BYTES:
        raise ValueError(f"a body is 0 or at least {MIN_JSON_BYTES} bytes, not {size}")
    return _HEAD + b"x" * (size - MIN_JSON_BYTES) + _TAIL


def make_app(size: int, path: str = "/") -> Flask:
    """A Flask app with one route at `path` (GET and POST) answering `body(size)`."""
    content = body(size)
    bare = Flask("bench.bare")

    @bare.route(path, methods=["GET", "POST"])
    def constant() -> Response:
        if request.method == "POST":
            request.get_data()
        return Response(content, mimetype=CONTENT_TYPE)

    return bare


def make_raw(size: int) -> Wsgi:
    """A WSGI callable answering `body(size)` to any request, its body read first."""
    content = body(size)
    headers = [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(content)))]

    def raw(environ: dict, start_response: Callable) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH")
        if length:
            environ["wsgi.input"].read(int(length))
        start_response("200 OK", headers)
        return [content]

    return raw


_SIZE = int(os.environ.get(SIZE_VARIABLE) or 512)
app = make_app(_SIZE, os.environ.get(PATH_VARIABLE) or "/")
raw = make_raw(_SIZE)
