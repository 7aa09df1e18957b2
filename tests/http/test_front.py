"""The front door (tally.http.front): request id on every response, and the fast-path seam."""
from __future__ import annotations

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from tally.observability import logs, metrics
from tally.http.front import Answer, Front, status_line
from tests.support import factories
from tests.support.factories import MIX

PREFIX = "/api/v2/ticketing"
COUNT = f"{PREFIX}/ticket/notification/count"
STREAM = f"{PREFIX}/ticket/notification/stream"
OFFERED = "poll-7f3a.2:b"


@pytest.fixture
def seeded(services, tenant_id):
    factories.notifications(services.db, tenant_id, "user-1", MIX)
    return tenant_id


def with_front(app, fast=None, pending: metrics.Pending | None = None, sample: float = 0.0):
    """`app` behind a front door with `fast`, counting into `pending`, sampling `sample`."""
    app.wsgi_app = Front(app.wsgi_app.app, logs.AccessLog(500, sample), fast=fast,
                         pending=pending or metrics.Pending(interval=3600))
    return app


def wire(response) -> tuple[str, list[tuple[str, str]], bytes]:
    """What went on the wire: status line, headers in order, body."""
    return response.status, response.headers.to_wsgi_list(), response.get_data()


def test_the_request_id_is_echoed_last_on_successes_errors_a_304_and_a_stream(
        make_app, headers, seeded):
    client = make_app(STREAM_HEARTBEAT_SECONDS=0.2).test_client()
    call = {**headers(), "X-Request-ID": OFFERED}
    ok = client.get(COUNT, headers=call)
    answers = {
        "200": ok,
        "304": client.get(COUNT, headers={**call, "If-None-Match": ok.headers["ETag"]}),
        "401": client.get(COUNT, headers={**call, "Authorization": "Bearer x.y.z"}),
        "404": client.get("/no/such/path", headers={"X-Request-ID": OFFERED}),
        "405": client.open("/healthz", method="BREW", headers={"X-Request-ID": OFFERED}),
        "stream": client.get(STREAM, headers={**call, "accept": "text/event-stream"},
                             buffered=False),
    }
    answers["stream"].close()
    assert [answer.status_code for answer in answers.values()] == [200, 304, 401, 404, 405, 200]
    for name, answer in answers.items():
        assert answer.headers.to_wsgi_list()[-1] == ("X-Request-ID", OFFERED), name


def test_a_log_line_written_during_a_request_carries_its_id_and_route(make_app, json_lines):
    client = make_app(DATABASE_URL="postgresql+psycopg://tally@127.0.0.1:1/tally").test_client()
    assert client.get("/readyz", headers={"X-Request-ID": OFFERED}).status_code == 503
    [line] = [entry for entry in json_lines() if entry["logger"] == "tally.http.views.ops"]
    assert (line["request_id"], line["route"], line["level"]) == (OFFERED, "/readyz", "WARNING")


def test_a_500_is_logged_and_so_is_an_exception_that_escapes_the_app(json_lines):
    def fails(environ, start_response):
        start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")])
        return [b"failed"]

    def raises(environ, start_response):
        raise RuntimeError("escaped")

    pending = metrics.Pending(interval=3600)
    for app in (fails, raises):
        client = Client(Front(app, logs.AccessLog(500, 0.0), pending=pending))
        try:
            assert client.get("/x", headers={"X-Request-ID": OFFERED}).status_code == 500
        except RuntimeError:
            assert app is raises
    lines = [entry for entry in json_lines() if entry["logger"] == "tally.http.request"]
    assert [(line["status"], line["route"], line["request_id"]) for line in lines] == \
        [(500, "unmatched", OFFERED)] * 2


# -- the fast-path seam ----------------------------------------------------------------------------

def test_an_answer_goes_out_byte_for_byte_as_flask_sends_the_same_response(
        make_app, headers, seeded):
    # Given what Flask sends for a count and for its 304
    flask = make_app().test_client()
    call = {**headers(), "X-Request-ID": OFFERED}
    full = flask.get(COUNT, headers=call)
    unchanged = {**call, "If-None-Match": full.headers["ETag"]}
    not_modified = flask.get(COUNT, headers=unchanged)
    assert not_modified.status == "304 NOT MODIFIED"

    # When a fast path answers the same requests with those responses as Answers
    def as_answer(response) -> Answer:
        return Answer(response.status_code, response.headers.to_wsgi_list()[:-1],
                      response.get_data(), COUNT, response.headers["X-Count-Source"])

    answers = {None: as_answer(full), full.headers["ETag"]: as_answer(not_modified)}
    fast = with_front(make_app(), lambda environ: answers[environ.get("HTTP_IF_NONE_MATCH")])
    client = fast.test_client()
    # Then status line, headers (in order, X-Request-ID last) and body are the same bytes
    assert wire(client.get(COUNT, headers=call)) == wire(full)
    assert wire(client.get(COUNT, headers=unchanged)) == wire(not_modified)


def test_a_fast_path_that_returns_none_leaves_the_request_to_flask(make_app):
    seen = []

    def fast(environ: dict) -> Answer | None:
        seen.append(environ[logs.REQUEST_ID_ENVIRON])
        return None

    client = with_front(make_app(), fast).test_client()
    response = client.get("/healthz", headers={"X-Request-ID": OFFERED})
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})
    assert seen == [OFFERED] and response.headers["X-Request-ID"] == OFFERED


def test_a_request_touches_no_metric_until_a_fold(make_app):
    pending = metrics.Pending(interval=3600)  # its thread will not fold during the test
    client = with_front(make_app(), pending=pending).test_client()
    labels = {"route": "/healthz", "method": "GET", "status": "200"}
    before = metrics.LIVE.get_sample_value("tally_http_requests_total", labels) or 0
    for _ in range(3):
        client.get("/healthz")
    assert (metrics.LIVE.get_sample_value("tally_http_requests_total", labels) or 0) == before
    pending.fold()
    assert metrics.LIVE.get_sample_value("tally_http_requests_total", labels) == before + 3


def test_an_answer_is_counted_and_logged_like_a_flask_answer(make_app, json_lines):
    # Given a fast path answering every count with a warm read, and a sample of every request
    pending = metrics.Pending(interval=3600)
    answer = Answer(200, [("Content-Type", "application/json"), ("Content-Length", "2")], b"{}",
                    COUNT, "cache")
    client = with_front(make_app(), lambda environ: answer, pending, sample=1.0).test_client()
    figures = (("tally_count_reads_total", {"endpoint": "notification", "source": "cache"}),
               ("tally_http_requests_total", {"route": COUNT, "method": "GET", "status": "200"}),
               ("tally_http_request_duration_seconds_count", {"route": COUNT, "method": "GET"}))
    before = [metrics.LIVE.get_sample_value(name, labels) or 0 for name, labels in figures]
    # When it answers twice
    for _ in range(2):
        response = client.get(COUNT, headers={"X-Request-ID": OFFERED})
        assert response.get_data() == b"{}" and response.headers["X-Request-ID"] == OFFERED
    pending.fold()
    # Then both are counted (requests, latency, the read's source) and logged with their route
    after = [metrics.LIVE.get_sample_value(name, labels) for name, labels in figures]
    assert [a - b for a, b in zip(after, before)] == [2, 2, 2]
    lines = [entry for entry in json_lines() if entry["logger"] == "tally.http.request"]
    assert [(line["route"], line["status"], line["request_id"]) for line in lines] == \
        [(COUNT, 200, OFFERED)] * 2


def test_an_answer_to_a_head_request_has_no_body(make_app):
    answer = Answer(200, [("Content-Type", "text/plain"), ("Content-Length", "5")], b"hello",
                    "/healthz")
    client = with_front(make_app(), lambda environ: answer).test_client()
    assert client.get("/healthz").get_data() == b"hello"
    head = client.head("/healthz")
    assert head.get_data() == b"" and head.headers["Content-Length"] == "5"


@pytest.mark.parametrize("code", [200, 201, 202, 304, 400, 401, 404, 413, 422, 429, 503, 599])
def test_status_lines_are_werkzeugs(code):
    assert status_line(code) == Response(status=code).status
