"""Structured logs: JSON lines with request id, tenant and route; never a token."""
from __future__ import annotations

import json
import logging
import re

import pytest

from tally.app import create_app
from tally.observability import logs
from tally.settings import CLASSES

PREFIX = "/api/v2/ticketing"
COUNT = f"{PREFIX}/ticket/notification/count"
UNREACHED = "postgresql+psycopg://tally@127.0.0.1:1/tally"  # connection refused at once


def access_lines(written: list[dict]) -> list[dict]:
    return [entry for entry in written if entry["logger"] == "tally.http.request"]


def test_a_request_logs_one_json_line_with_id_tenant_route_status_and_duration(
        make_app, headers, tenant_id, json_lines):
    client = make_app(LOG_SAMPLE_RATE=1.0).test_client()  # a 200 is logged when sampled
    call = {**headers(), "X-Request-ID": "req-abc.123"}
    response = client.get(f"{PREFIX}/ticket/notification/count", headers=call)
    assert response.headers["X-Request-ID"] == "req-abc.123"
    [line] = access_lines(json_lines())
    assert line["request_id"] == "req-abc.123"
    assert line["tenant"] == tenant_id
    assert line["route"] == f"{PREFIX}/ticket/notification/count"
    assert line["status"] == 200 and line["method"] == "GET"
    assert isinstance(line["duration_ms"], float)
    assert set(line) >= {"ts", "level", "logger", "msg"}
    assert line["ts"].endswith("Z")


def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(client, json_lines):
    for offered in (None, "bad id with spaces", "x" * 200):
        call = {"X-Request-ID": offered} if offered else {}
        generated = client.get("/healthz", headers=call).headers["X-Request-ID"]
        assert generated != offered and len(generated) == 32
        int(generated, 16)
    assert all(entry["request_id"] != "bad id with spaces" for entry in json_lines())


def test_no_token_reaches_a_log_line(make_app, headers, tenant_id, json_lines):
    client = make_app(LOG_SAMPLE_RATE=1.0).test_client()
    call = headers()
    token = call["Authorization"].split()[1]
    client.get(f"{PREFIX}/ticket/notification/count", headers=call)
    client.get(f"{PREFIX}/ticket/notification/count?token={token}", headers=call)
    call["x-tenantid"] = "00000000-0000-0000-0000-000000000000"  # a 404 path with the token
    client.get(f"{PREFIX}/ticket/notification/count", headers=call)
    logging.getLogger("tally.test").warning("a careless line: Authorization: Bearer %s", token)
    written = json_lines()
    assert len(written) >= 4
    text = json.dumps(written)
    assert token not in text and token.split(".")[1] not in text
    assert "Bearer [redacted]" in text


# -- the access log's policy ----------------------------------------------------------------------

def test_errors_are_logged_but_not_the_expected_401_403_404_nor_unsampled_successes(
        make_app, headers, tenant_id, json_lines):
    # Given apps that sample nothing, one of them with its database down (readyz answers 503)
    client = make_app(LOG_SAMPLE_RATE=0.0).test_client()
    down = make_app(LOG_SAMPLE_RATE=0.0, DATABASE_URL=UNREACHED).test_client()
    # When they answer one request of each kind
    answers = [
        client.get("/healthz"),
        down.get("/readyz"),
        client.get(COUNT),  # no x-tenantid: 400
        client.get(COUNT, headers={**headers(), "Authorization": "Bearer x.y.z"}),
        client.get(COUNT, headers=headers(roles=("billing",))),
        client.get("/no/such/path"),
        client.open("/healthz", method="BREW"),
    ]
    assert [answer.status_code for answer in answers] == [200, 503, 400, 401, 403, 404, 405]
    # Then exactly the 5xx and the 4xx other than 401, 403 and 404 have a line
    logged = {(line["route"], line["status"], line["method"])
              for line in access_lines(json_lines())}
    assert logged == {("/readyz", 503, "GET"), (COUNT, 400, "GET"), ("unmatched", 405, "BREW")}


def test_a_422_is_logged(make_app, headers, tenant_id, json_lines):
    client = make_app(LOG_SAMPLE_RATE=0.0).test_client()
    agent = headers(user="alice", roles=("ticket_agent",))
    answer = client.post(f"{PREFIX}/ticket/count?type=template&module=ticketing",
                         json={"filterIds": ["9999"]}, headers=agent)
    assert answer.status_code == 422
    [line] = access_lines(json_lines())
    assert (line["route"], line["status"], line["tenant"]) == \
        (f"{PREFIX}/ticket/count", 422, tenant_id)


def test_a_request_slower_than_the_threshold_is_logged_whatever_its_status(make_app, json_lines):
    client = make_app(LOG_SAMPLE_RATE=0.0, LOG_SLOW_MS=0).test_client()  # any time is slower
    client.get("/healthz")
    client.get("/no/such/path")
    assert [(line["route"], line["status"]) for line in access_lines(json_lines())] == \
        [("/healthz", 200), ("unmatched", 404)]


def test_a_sample_rate_of_zero_logs_no_success_and_one_logs_every_request(make_app, json_lines):
    never = make_app(LOG_SAMPLE_RATE=0.0).test_client()
    for _ in range(20):
        never.get("/healthz")
    assert access_lines(json_lines()) == []
    always = make_app(LOG_SAMPLE_RATE=1.0).test_client()
    for _ in range(20):
        always.get("/healthz")
    always.get("/no/such/path")
    written = access_lines(json_lines())
    assert len(written) == 21 and {line["status"] for line in written} == {200, 404}


@pytest.mark.parametrize("status, seconds, draw, logged", [
    (500, 0.0, 0.99, True), (503, 0.0, 0.99, True), (400, 0.0, 0.99, True),
    (405, 0.0, 0.99, True), (409, 0.0, 0.99, True), (422, 0.0, 0.99, True),
    (401, 0.0, 0.99, False), (403, 0.0, 0.99, False), (404, 0.0, 0.99, False),
    (200, 0.0, 0.99, False), (304, 0.0, 0.99, False),
    (200, 0.251, 0.99, True), (404, 0.251, 0.99, True), (200, 0.25, 0.99, False),
    (200, 0.0, 0.09, True), (401, 0.0, 0.09, True),
])
def test_the_policy_logs_errors_slow_requests_and_a_sample(status, seconds, draw, logged):
    policy = logs.AccessLog(slow_ms=250, sample_rate=0.1, draw=lambda: draw)
    assert policy.wants(status, seconds) is logged


def test_a_rate_of_zero_or_one_draws_no_random_number():
    def draw() -> float:
        raise AssertionError("no draw expected")

    assert logs.AccessLog(500, 0.0, draw).wants(200, 0.0) is False
    assert logs.AccessLog(500, 1.0, draw).wants(200, 0.0) is True


def test_redact_masks_bearer_credentials_and_jwt_shaped_strings():
    assert logs.redact("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]"
    assert logs.redact("token eyJhbGciOi.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end") == \
        "token [redacted] end"
    assert logs.redact("nothing secret here") == "nothing secret here"


def test_an_exception_logs_its_type_and_place_but_no_traceback_text():
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("secret detail Bearer xyz")
    except ValueError:
        record = logging.LogRecord("tally.x", logging.ERROR, __file__, 7, "failed", None,
                                   exc_info=__import__("sys").exc_info())
    entry = json.loads(formatter.format(record))
    assert entry["error"] == "ValueError" and entry["where"].endswith(":7")
    assert "secret detail" not in json.dumps(entry)


def test_configure_installs_one_json_handler_however_often():
    logs.configure(logging.WARNING)
    logs.configure(logging.WARNING)
    root = logging.getLogger()
    assert sum(isinstance(h.formatter, logs.JsonFormatter) for h in root.handlers) == 1


@pytest.mark.parametrize("env, readable", [("development", True), ("production", False),
                                           ("test", False)])
def test_development_logs_readable_lines_and_every_other_env_json(
        env, readable, db_url, redis_url, realms_file, var_dir, capsys):
    app = create_app(CLASSES[env](), DATABASE_URL=db_url, REDIS_URL=redis_url,
                     REALMS_FILE=realms_file, VAR_DIR=var_dir)
    try:
        capsys.readouterr()
        logging.getLogger("tally.test").warning("queue %s is %d deep", "apply", 3,
                                                extra={"tenant_count": 2})
        [line] = capsys.readouterr().err.splitlines()
    finally:
        app.extensions["tally"].db.engine.dispose()
        logs.configure(logging.WARNING)  # as the test config left it
    if readable:
        assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING tally\.test: queue apply is 3 deep  "
                            r"\(tenant_count=2\)", line), line
    else:
        entry = json.loads(line)
        assert (entry["level"], entry["msg"], entry["tenant_count"]) == (
            "WARNING", "queue apply is 3 deep", 2)


def test_a_readable_access_line_leaves_out_what_its_message_says_and_masks_tokens():
    record = logging.LogRecord("tally.http.request", logging.INFO, __file__, 1, "%s %s %s",
                               ("GET", "/api/v2/ticketing/events", 202), None)
    record.__dict__.update(method="GET", status=202, duration_ms=3.25, request_id="r1",
                           tenant="t", route="/api/v2/ticketing/events")
    line = logs.TextFormatter().format(record)
    assert line.endswith("INFO    tally.http.request: GET /api/v2/ticketing/events 202  "
                         "(duration_ms=3.25)"), line
    secret = logging.LogRecord("tally.x", logging.ERROR, __file__, 9, "Bearer abc.def", None,
                               None)
    assert logs.TextFormatter().format(secret).endswith("tally.x: Bearer [redacted]")


def test_configure_switches_its_one_handler_between_json_and_text():
    root = logging.getLogger()
    try:
        logs.configure(logging.WARNING, readable=True)
        ours = [h for h in root.handlers if isinstance(h.formatter, (logs.JsonFormatter,
                                                                     logs.TextFormatter))]
        assert [type(h.formatter) for h in ours] == [logs.TextFormatter]
    finally:
        logs.configure(logging.WARNING)
    assert sum(isinstance(h.formatter, logs.JsonFormatter) for h in root.handlers) == 1
