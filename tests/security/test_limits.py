"""Limits: every bound on what one call may carry is a clear 4xx in the contract's envelope, with
details naming the bound; nothing past a bound is written.

Also covered elsewhere: events per call (tests/services/test_bad_input.py: 5,000 accepted whole,
5,001 a 400), custom filters per user (tests/services/test_catalog.py), filter definition
size (tests/core/test_conditions.py), SSE streams per user and per process
(tests/http/test_stream.py: a user's oldest stream replaced, 503 with Retry-After), token size
(tests/auth/test_tokens.py), and before the app: URL, headers and body past the edge's or
gunicorn's limits (tests/test_edge.py: 414, 431, 413 in the envelope).
"""
from __future__ import annotations

import io
import json

import pytest

from tally.auth.tokens import MAX_TOKEN_BYTES
from tally.http.schemas.tickets import MAX_FILTER_IDS

from tests.support.api import API, BODIES, COUNT, error_of

LIMIT = 4 * 1024 * 1024  # MAX_CONTENT_LENGTH


@pytest.fixture
def caller(headers):
    return headers(user="boss", roles=("ticket_admin", "ticket_service"))


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("url", list(BODIES))
def test_a_body_over_the_size_limit_is_a_413_on_every_endpoint(app, client, caller, url,
                                                               streamed):
    assert app.config["MAX_CONTENT_LENGTH"] == LIMIT
    body = json.dumps({**BODIES[url], "padding": "x" * LIMIT}).encode()
    if streamed:  # no Content-Length: the server marks the end of the stream
        response = client.post(url, input_stream=io.BytesIO(body),
                               content_type="application/json",
                               headers={"Transfer-Encoding": "chunked", **caller},
                               environ_overrides={"wsgi.input_terminated": True})
    else:
        response = client.post(url, data=body, content_type="application/json", headers=caller)
    error = error_of(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"] == {"maxBytes": LIMIT}
    # and a body under the limit, streamed or not, goes through
    small = json.dumps(BODIES[url]).encode()
    kwargs = dict(input_stream=io.BytesIO(small), environ_overrides={
        "wsgi.input_terminated": True}) if streamed else dict(data=small)
    extra = {"Transfer-Encoding": "chunked"} if streamed else {}
    ok = client.post(url, content_type="application/json", headers={**extra, **caller}, **kwargs)
    assert ok.status_code < 300, ok.get_json()


@pytest.mark.parametrize("url, method, payload, field, words", [
    pytest.param(COUNT, "post", {"filterIds": ["all"] * (MAX_FILTER_IDS + 1)}, "filterIds",
                 "between 1 and 200", id="filter-ids-per-call"),
    pytest.param(API + "/ticket/notification/list?limit=101", "get", None, "limit",
                 "less than or equal to 100", id="list-page-size"),
    pytest.param(API + "/ticket/notification/read", "post", {"ids": ["n-1"] * 1001}, "ids",
                 "between 1 and 1000", id="ids-per-read"),
])
def test_a_call_over_a_count_limit_is_a_400_naming_the_field_and_the_bound(
        client, caller, url, method, payload, field, words):
    response = getattr(client, method)(url, json=payload, headers=caller) if payload else \
        getattr(client, method)(url, headers=caller)
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == [field]
    assert words in error["details"][field][0]


def test_a_token_over_the_size_limit_is_a_401_naming_the_bound(client, caller):
    oversized = {**caller, "Authorization": "Bearer " + "a" * (MAX_TOKEN_BYTES + 1)}
    error = error_of(client.get(API + "/ticket/notification/count", headers=oversized), 401,
                     "UNAUTHORIZED")
    assert error["details"] == {"maxBytes": MAX_TOKEN_BYTES}
    assert str(MAX_TOKEN_BYTES) in error["message"]
