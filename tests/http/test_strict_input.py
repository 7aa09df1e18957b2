"""Contract §2 "Strictness": one rule for every body, query and header, whichever view reads it.

Every endpoint taking a JSON body (tests/security/test_limits.py's BODIES): a body not declared
JSON is a 415, one nested too deep or that does not parse a 400, booleans are JSON booleans; a
query parameter given twice is a 400; `x-tenantid` only in its canonical form.
"""
from __future__ import annotations

import json
import logging

import pytest

from tally.http.bodies import MAX_JSON_DEPTH
from tests.support.api import API, BODIES, COUNT, error_of

BADGE = API + "/ticket/notification/count"
READ = API + "/ticket/notification/read"
FILTERS = API + "/filters"


@pytest.fixture
def caller(headers):
    return headers(user="boss", roles=("ticket_admin", "ticket_service"))


def nested(depth: int) -> str:
    """A 2 KB-ish body nesting `depth` arrays inside an object."""
    return '{"x": ' + "[" * depth + "]" * depth + "}"


# -- 3. deep nesting ------------------------------------------------------------------------------
@pytest.mark.parametrize("url", list(BODIES))
def test_a_deeply_nested_body_is_a_400_on_every_endpoint_and_logs_no_error(
        client, caller, url, caplog):
    caplog.set_level(logging.WARNING)
    response = client.post(url, data=nested(990), content_type="application/json",
                           headers=caller)
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert error["details"] == {"body": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("url", list(BODIES))
def test_a_body_nested_to_the_bound_is_read(client, caller, url):
    """At MAX_JSON_DEPTH the body is parsed, and its schema (not the depth) refuses the extra
    key; one level more is the depth's 400."""
    body = dict(BODIES[url])
    at_bound = json.dumps({**body, "extra": json.loads(nested(MAX_JSON_DEPTH - 2))})
    error = error_of(client.post(url, data=at_bound, content_type="application/json",
                                 headers=caller), 400, "VALIDATION_ERROR")
    assert "Nested deeper" not in json.dumps(error["details"])
    beyond = json.dumps({**body, "extra": json.loads(nested(MAX_JSON_DEPTH - 1))})
    error = error_of(client.post(url, data=beyond, content_type="application/json",
                                 headers=caller), 400, "VALIDATION_ERROR")
    assert "Nested deeper" in json.dumps(error["details"])


# -- 11. one Content-Type rule -------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
@pytest.mark.parametrize("url", list(BODIES))
def test_a_json_body_with_a_non_json_content_type_is_a_415_on_every_endpoint(
        client, caller, url, content_type):
    kinds = {"Content-Type": content_type} if content_type else {}
    response = client.post(url, data=json.dumps(BODIES[url]), headers={**caller, **kinds})
    error = error_of(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert error["details"] == {"contentType": content_type}


@pytest.mark.parametrize("url", list(BODIES))
def test_a_body_no_json_parser_loads_is_a_400_on_every_endpoint(client, caller, url):
    for bad in ("{", '{"a": 1,}', b'{"a": "\xff"}', "NaN-ish"):
        response = client.post(url, data=bad, content_type="application/json", headers=caller)
        assert error_of(response, 400, "VALIDATION_ERROR")["details"] == ["Invalid JSON body."]


# -- 9. strict booleans --------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["yes", 1, "on", "true", "1", 0, None])
def test_mark_read_takes_only_json_true(client, headers, value):
    response = client.post(READ, json={"all": value}, headers=headers())
    assert error_of(response, 400, "VALIDATION_ERROR")["details"]["all"]


@pytest.mark.parametrize("value", ["yes", 1, "on", "true", "false", 0])
def test_a_filter_is_shared_only_by_json_true(client, headers, value):
    body = {**BODIES[FILTERS], "shared": value}
    response = client.post(FILTERS, json=body, headers=headers())
    assert error_of(response, 400, "VALIDATION_ERROR")["details"] == {
        "shared": ["Not a valid boolean."]}
    listed = client.get(FILTERS, headers=headers(user="someone-else")).get_json()["data"]
    assert all(item["name"] != "vip" for item in listed["items"])


# -- 10. repeated query parameters and x-tenantid spellings ---------------------------------------
@pytest.mark.parametrize("method, url", [
    ("post", COUNT.replace("?type=template", "?type=template&type=foo")),
    ("post", COUNT.replace("?type=template", "?type=template&type=template")),
    ("post", COUNT + "&module=ticketing"),
    ("get", BADGE + "?view=full&view=minimal"),
    ("get", API + "/ticket/notification/list?limit=5&limit=6"),
    ("get", API + "/ticket/notification/stream?view=full&view=full"),
])
def test_a_query_parameter_given_twice_is_a_400(client, caller, method, url):
    response = client.post(url, json=BODIES[COUNT], headers=caller) if method == "post" else \
        client.get(url, headers=caller)
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert list(error["details"].values()) == [["Given more than once."]]


@pytest.mark.parametrize("spell", [
    lambda t: "{" + t + "}", lambda t: t.replace("-", ""), lambda t: "urn:uuid:" + t,
    lambda t: " " + t, lambda t: t + "\t"])
def test_x_tenantid_is_taken_in_its_canonical_form_only(client, headers, tenant_id, spell):
    call = headers()
    assert client.get(BADGE, headers=call).status_code == 200
    assert client.get(BADGE, headers={**call, "x-tenantid": tenant_id.upper()}).status_code == 200
    response = client.get(BADGE, headers={**call, "x-tenantid": spell(tenant_id)})
    assert error_of(response, 400, "INVALID_HEADER")["details"] == {"header": "x-tenantid"}
