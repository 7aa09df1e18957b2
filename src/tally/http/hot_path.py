"""The hot views (the badge poll, the sidebar's ticket count) without flask-smorest's run-time
layers, documented all the same.

flask-smorest's decorators both document an operation and wrap the view: `arguments` parses
through webargs and each `response`/`alt_response` adds a call layer. On the busiest call of the
service (every open tab polls the badge) those layers cost ~45 µs of a 0.55–0.6 ms in-process read
(bench/profile.py; docs/benchmarks.md). `documented` keeps what the decorators write into the
OpenAPI document and drops their wrappers; `query_args` then loads the query string with the
same schema as webargs would (unknown keys ignored, a repeated key a 400), and
`body_args` the JSON body (the same parser as `@blp.arguments`, tally.http.bodies.BodyParser;
unknown keys refused by the schema), and a bad
value is the same 400 with the same details. `Remembered` keeps what recent raw inputs loaded
to, in one of the app's caches: a sidebar resends the very same query and body every few seconds.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError
from webargs.core import missing

from tally.core.cache import Cache
from tally.errors import ValidationFailed
from tally.extensions import Caches, services
from tally.http.bodies import Blueprint

View = Callable[..., Any]
T = TypeVar("T")


def documented(*decorators: Callable[[View], View]) -> Callable[[View], View]:
    """Apply flask-smorest decorators (outermost first, as if stacked) for the OpenAPI document
    only: the returned view is `view` itself, carrying the `_apidoc` they would have given it."""

    def decorate(view: View) -> View:
        wrapped = view
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        view._apidoc = wrapped._apidoc  # type: ignore[attr-defined]
        return view

    return decorate


def query_args(schema: Schema) -> dict[str, Any]:
    """The request's query string loaded with `schema` as flask-smorest's `arguments(schema,
    location="query")` would load it; a ValidationFailed (400) names each bad key."""
    try:
        return schema.load(request.args, unknown=EXCLUDE)
    except ValidationError as error:
        raise ValidationFailed(details=error.messages) from None


def body_args(schema: Schema) -> dict[str, Any]:
    """The request's JSON body loaded with `schema` as flask-smorest's `arguments(schema)` would
    load it: read by the same parser (tally.http.bodies.BodyParser: an empty body loads as {}; a
    body without a JSON Content-Type is a 415, one nested too deep or that does not parse a
    400 "Invalid JSON body."), then loaded with
    the schema's own `unknown` (RAISE: an unknown key is refused); a ValidationFailed (400) names
    each bad key."""
    data = Blueprint.ARGUMENTS_PARSER.load_json(request, schema)
    try:
        return schema.load({} if data is missing else data)
    except ValidationError as error:
        raise ValidationFailed(details=error.messages) from None


class Remembered(Generic[T]):
    """A loader whose answer is a pure function of the request's raw bytes, remembering what
    raw inputs loaded to in one of the app's caches (marshmallow validating a sidebar's 30 ids
    and its timezone costs more than the rest of the view's own work, for the same bytes every
    poll).

    `raw()` gives the bytes the answer depends on, all of them; `load()` reads the request;
    `cache(caches)` picks the app's cache. Only successful loads are kept (a bad input raises
    its 400 again each time), only of inputs of at most `max_bytes` (the cache bounds how
    many). The values are shared between requests and threads: callers must not modify them.
    """

    def __init__(self, load: Callable[[], T], raw: Callable[[], bytes],
                 cache: Callable[[Caches], Cache[bytes, T]], max_bytes: int = 16384):
        self.load, self.raw, self.cache, self.max_bytes = load, raw, cache, max_bytes

    def __call__(self) -> T:
        key = self.raw()
        if len(key) > self.max_bytes:
            return self.load()
        cache = self.cache(services().caches)
        value = cache.get(key)
        return value if value is not None else cache.put(key, self.load())
