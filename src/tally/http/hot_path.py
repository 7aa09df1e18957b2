"""The badge poll's view without flask-smorest's run-time layers, documented all the same.

flask-smorest's decorators both document an operation and wrap the view: `arguments` parses
through webargs and each `response`/`alt_response` adds a call layer. On the busiest call of the
service (every open tab polls the badge) those layers cost ~45 µs of a 0.55–0.6 ms in-process read
(bench/profile.py; docs/benchmarks.md). `documented` keeps what the decorators write into the
OpenAPI document and drops their wrappers; `query_args` then loads the query string with the
same schema as webargs would (unknown keys ignored, first value of a repeated key), and a bad
value is the same 400 with the same details.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError

from tally.errors import ValidationFailed

View = Callable[..., Any]


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
