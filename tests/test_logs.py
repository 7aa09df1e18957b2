"""Structured logs: JSON lines with request id, tenant and route; never a token."""
from __future__ import annotations

import json
import logging

import pytest

from tally import logs

PREFIX = "/api/v2/ticketing"


@pytest.fixture
def lines(capsys):
    """The JSON lines written to stderr while the test runs (root at INFO for its duration)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)

    def read() -> list[dict]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    yield read
    root.setLevel(level)


def test_a_request_logs_one_json_line_with_id_tenant_route_status_and_duration(
        client, headers, tenant_id, lines):
    call = {**headers(), "X-Request-ID": "req-abc.123"}
    response = client.get(f"{PREFIX}/ticket/notification/count", headers=call)
    assert response.headers["X-Request-ID"] == "req-abc.123"
    [line] = [entry for entry in lines() if entry["logger"] == "tally.http.request"]
    assert line["request_id"] == "req-abc.123"
    assert line["tenant"] == tenant_id
    assert line["route"] == f"{PREFIX}/ticket/notification/count"
    assert line["status"] == 200 and line["method"] == "GET"
    assert isinstance(line["duration_ms"], float)
    assert set(line) >= {"ts", "level", "logger", "msg"}
    assert line["ts"].endswith("Z")


def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(client, lines):
    for offered in (None, "bad id with spaces", "x" * 200):
        call = {"X-Request-ID": offered} if offered else {}
        generated = client.get("/healthz", headers=call).headers["X-Request-ID"]
        assert generated != offered and len(generated) == 32
        int(generated, 16)
    assert all(entry["request_id"] != "bad id with spaces" for entry in lines())


def test_no_token_reaches_a_log_line(client, headers, tenant_id, lines):
    call = headers()
    token = call["Authorization"].split()[1]
    client.get(f"{PREFIX}/ticket/notification/count", headers=call)
    client.get(f"{PREFIX}/ticket/notification/count?token={token}", headers=call)
    call["x-tenantid"] = "00000000-0000-0000-0000-000000000000"  # a 404 path with the token
    client.get(f"{PREFIX}/ticket/notification/count", headers=call)
    logging.getLogger("tally.test").warning("a careless line: Authorization: Bearer %s", token)
    written = lines()
    assert len(written) >= 4
    text = json.dumps(written)
    assert token not in text and token.split(".")[1] not in text
    assert "Bearer [redacted]" in text


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
