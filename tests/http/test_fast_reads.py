"""tally.http.fast_reads: a warm poll answered in front of Flask is the same bytes Flask sends,
and everything the fast path does not know goes to Flask.

Golden pairs: each request is answered once by the fast path and once by Flask alone
(`Flask.wsgi_app`, below any middleware), with the clock frozen, and status, headers (in order)
and body must be identical. X-Request-ID is left out of the pair: the front door adds it to both
(tests/http/test_front.py).
"""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tally.core.filters import SYSTEM_FILTERS
from tally.http import envelope
from tally.http.fast_reads import BADGE, TICKET_COUNT, FastReads
from tests.support import factories

NOW = datetime(2026, 3, 8, 6, 45, 30, 125000, tzinfo=timezone.utc)
AGENT = dict(user="agent-1", roles=("ticket_agent",), teams=("t0", "t1", "t|3"))
SIDEBAR = {"filterIds": [spec.id for spec in SYSTEM_FILTERS][:30], "timezone": "Asia/Calcutta"}


@pytest.fixture
def world(app, tenant_id, ticket_world, monkeypatch):
    """A tenant with notifications for user-1 and 200 tickets, the clock frozen at NOW."""
    monkeypatch.setattr(envelope, "utc_now", lambda: NOW)
    factories.notifications(app.extensions["tally"].db, tenant_id, "user-1",
                            [{"type": "mention"}, {"type": "comment", "read": True},
                             {"priority": "critical"}])
    ticket_world(now=NOW, n=200, seed=7)
    return FastReads(app)


def environ(method: str, url: str, hdrs: dict, json: dict | None = None, **extra) -> dict:
    path, _, query = url.partition("?")
    return EnvironBuilder(method=method, path=path, query_string=query, headers=hdrs, json=json,
                          **extra).get_environ()


def by_flask(app, env: dict) -> tuple[int, list, bytes]:
    body, status, headers = run_wsgi_app(lambda e, s: Flask.wsgi_app(app, e, s), env)
    return (int(status.split()[0]), [h for h in headers.to_wsgi_list() if h[0] != "X-Request-ID"],
            b"".join(body))


def by_fast(fast: FastReads, env: dict) -> tuple[int, list, bytes] | None:
    answer = fast(env)
    return None if answer is None else (answer.status, answer.headers, answer.body)


def golden(app, fast: FastReads, make_env) -> tuple[int, list, bytes]:
    """Warm every memo through Flask, then the fast answer must equal Flask's, byte for byte."""
    by_flask(app, make_env())
    flask_answer = by_flask(app, make_env())
    fast_answer = by_fast(fast, make_env())
    assert fast_answer is not None, "a warm poll must be answered in front of Flask"
    assert fast_answer == flask_answer
    return fast_answer


@pytest.mark.parametrize("query", ["", "?view=full", "?view=minimal", "?view=minimal&x=1"])
def test_a_warm_badge_is_the_bytes_flask_sends(app, world, headers, query):
    hdrs = headers()  # one token: each call of headers() signs a new one
    status, sent, body = golden(app, world, lambda: environ("GET", BADGE + query, hdrs))
    assert status == 200 and dict(sent)["X-Count-Source"] == "cache" and body


def test_a_badge_whose_etag_matches_is_the_same_304_and_others_the_same_200(app, world, headers):
    hdrs = headers()
    etag = dict(golden(app, world, lambda: environ("GET", BADGE, hdrs))[1])["ETag"]
    for given, status in ((etag, 304), ("*", 304), (f"W/{etag}", 304), (f'"x", {etag}', 304),
                          ('"other"', 200)):
        conditional = {**hdrs, "If-None-Match": given}
        answer = golden(app, world, lambda: environ("GET", BADGE, conditional))
        assert answer[0] == status, given
    assert answer[2] and not golden(app, world, lambda: environ(
        "GET", BADGE, {**hdrs, "If-None-Match": etag}))[2]


@pytest.mark.parametrize("case", ["agent", "template", "support", "profile", "charset",
                                  "repeated ids", "unknown query key"])
def test_a_warm_sidebar_is_the_bytes_flask_sends(app, client, world, headers, case):
    hdrs, body, view = headers(**AGENT), dict(SIDEBAR), "agent"
    if case == "template":
        view = "template"
    elif case == "support":
        hdrs["issupportrequest"] = "TRUE"
    elif case == "profile":
        made = client.post("/api/v2/ticketing/filters", headers=hdrs, json={
            "name": "high", "conditions": {"all": [{"field": "priority", "op": "eq",
                                                    "value": "high"}]}})
        body["templateProfileFilterId"] = made.get_json()["data"]["id"]
    elif case == "repeated ids":
        body["filterIds"] = body["filterIds"][:5] * 2
    url = f"{TICKET_COUNT}?type={view}&module=ticketing"
    if case == "unknown query key":
        url += "&x=1"
    extra = {"content_type": "application/json; charset=utf-8"} if case == "charset" else {}
    status, sent, payload = golden(app, world, lambda: environ("POST", url, hdrs, body, **extra))
    assert status == 200 and dict(sent)["X-Count-Source"] == "cache"
    assert b'"counts":{"all":' in payload


def test_what_the_fast_path_does_not_know_goes_to_flask(app, world, headers, redis_url):
    hdrs = headers()
    assert world(environ("GET", BADGE, hdrs)) is None  # headers never checked yet
    by_flask(app, environ("GET", BADGE, hdrs))
    assert world(environ("GET", BADGE, hdrs)) is not None
    refused = {
        "another route": environ("GET", "/api/v2/ticketing/ticket/notification/list", hdrs),
        "another method": environ("HEAD", BADGE, hdrs),
        "an Accept to parse": environ("GET", BADGE, {**hdrs, "Accept": "text/html"}),
        "another token": environ("GET", BADGE, headers(user="user-2")),
        "a query never loaded": environ("GET", BADGE + "?view=nonsense", hdrs),
    }
    for what, env in refused.items():
        assert world(env) is None, what
    app.extensions["tally"].counters.client.flushall()
    assert world(environ("GET", BADGE, hdrs)) is None  # cold: Flask recomputes


def test_a_sidebar_the_fast_path_cannot_vouch_for_goes_to_flask_with_its_body(
        app, world, headers):
    agent, user = headers(**AGENT), headers(user="user-9")
    url = f"{TICKET_COUNT}?type=agent&module=ticketing"
    by_flask(app, environ("POST", url, agent, SIDEBAR))
    by_flask(app, environ("POST", f"{TICKET_COUNT}?type=user", user, SIDEBAR))
    forbidden = environ("POST", url, user, SIDEBAR)  # a ticket_user asking for type=agent
    assert world(forbidden) is None
    assert by_flask(app, forbidden)[0] == 403  # the body is still there for Flask to read
    other = environ("POST", url, agent, {**SIDEBAR, "filterIds": ["all", "nope"]})
    assert world(other) is None  # it read the body, found it unknown, and left it for Flask:
    assert by_flask(app, other)[2].count(b'"invalidIds":["nope"]') == 1
    chunked = environ("POST", url, agent, SIDEBAR)
    chunked.pop("CONTENT_LENGTH")
    chunked["HTTP_TRANSFER_ENCODING"] = "chunked"
    assert world(chunked) is None
    bad_support = environ("POST", url, {**agent, "issupportrequest": "maybe"}, SIDEBAR)
    assert world(bad_support) is None and by_flask(app, bad_support)[0] == 400


def test_the_app_answers_a_warm_poll_in_front_of_flask(app, client, world, headers,
                                                       monkeypatch):
    """Wired in by create_app: once warm, the badge and the sidebar never reach their views."""
    from tally.http.views.notifications import NotificationCount
    from tally.http.views.tickets import TicketCount

    badge, agent = headers(), headers(**AGENT)
    url = f"{TICKET_COUNT}?type=agent&module=ticketing"
    first = client.get(BADGE, headers=badge), client.post(url, json=SIDEBAR, headers=agent)
    assert [r.headers["X-Count-Source"] for r in first] == ["recomputed", "recomputed"]

    def flask_view(*args, **kwargs):
        raise AssertionError("a warm poll reached Flask")

    monkeypatch.setattr(NotificationCount, "get", flask_view)
    monkeypatch.setattr(TicketCount, "post", flask_view)
    again = client.get(BADGE, headers=badge), client.post(url, json=SIDEBAR, headers=agent)
    assert [r.status_code for r in again] == [200, 200]
    assert [r.get_data() for r in again] == [r.get_data() for r in first]
    assert all(r.headers["X-Count-Source"] == "cache" and r.headers["X-Request-ID"]
               for r in again)


def test_a_service_token_gets_no_fast_answer_where_flask_answers_403(app, world, headers):
    """Contract §2: a ticket_service token counts nothing. Its headers pass the guard (it may
    post events), so the fast path must apply the views' COUNT_ROLES too."""
    url = f"{TICKET_COUNT}?type=template&module=ticketing"
    agent, service = headers(**AGENT), headers(user="svc", roles=("ticket_service",))
    for make_env in (lambda hdrs: environ("GET", BADGE, hdrs),
                     lambda hdrs: environ("POST", url, hdrs, SIDEBAR)):
        golden(app, world, lambda: make_env(agent))  # the query and body are remembered
        assert by_flask(app, make_env(service))[0] == 403  # the guard passed the headers
        assert world(make_env(service)) is None
        both = headers(user="svc", roles=("ticket_service", "ticket_admin"))
        assert golden(app, world, lambda: make_env(both))[0] == 200


def test_what_the_strict_loaders_refuse_gets_no_fast_answer(app, world, headers, tenant_id):
    """Contract §2's strictness holds in front of Flask too: the fast path answers only from
    loads and guard checks that passed, so a non-JSON Content-Type (415), a repeated query key
    and a non-canonical x-tenantid (400) reach Flask, and Flask refuses them."""
    agent = headers(**AGENT)
    url = f"{TICKET_COUNT}?type=agent&module=ticketing"
    golden(app, world, lambda: environ("POST", url, agent, SIDEBAR))
    refused = {
        415: environ("POST", url, agent, data=json.dumps(SIDEBAR), content_type="text/plain"),
        400: environ("POST", url + "&module=ticketing", agent, SIDEBAR),
    }
    for status, env in refused.items():
        assert world(env) is None
        assert by_flask(app, dict(env, **{"wsgi.input": io.BytesIO(
            json.dumps(SIDEBAR).encode())}))[0] == status
    braced = {**agent, "x-tenantid": "{%s}" % tenant_id}
    by_flask(app, environ("POST", url, braced, SIDEBAR))
    assert world(environ("POST", url, braced, SIDEBAR)) is None
    assert by_flask(app, environ("POST", url, braced, SIDEBAR))[0] == 400
