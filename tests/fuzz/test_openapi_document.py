"""The OpenAPI document describes the whole contract: every route, the bearer scheme, the guard's
headers and error statuses (in the envelope) on every guarded operation, response headers, and
examples of every request body and success response."""
from __future__ import annotations

import re

import pytest

from tally.auth.guard import PREFIX

GUARD_STATUSES = {"400", "401", "403", "404", "406", "500", "503"}
# Routes that are not part of the API: the document itself, its UI, Flask's static files.
NOT_API = {"/openapi.json", "/docs", "/static/<path:filename>"}
ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}
# Its 200 is documented by a description only (text/event-stream, no schema nor example yet).
NO_BODY_DOCUMENTED = {f"GET {PREFIX}/ticket/notification/stream"}


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def operations(document, guarded: bool):
    for path, item in document["paths"].items():
        if path.startswith(PREFIX + "/") != guarded:
            continue
        for method, operation in item.items():
            if method != "parameters":
                yield f"{method.upper()} {path}", item, operation


def test_every_route_of_the_app_is_in_the_document(app, document):
    documented = {(path, method.upper()) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    for rule in app.url_map.iter_rules():
        if rule.rule in NOT_API:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)


def test_every_guarded_operation_documents_the_token_headers_and_errors(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    seen = 0
    for label, item, operation in operations(document, guarded=True):
        seen += 1
        assert operation["security"] == [{"bearerAuth": []}], label
        headers = {p["name"]: p for p in operation["parameters"] + item.get("parameters", [])
                   if p["in"] == "header"}
        assert headers["x-tenantid"]["required"] and headers["realmname"]["required"], label
        assert headers["x-tenantid"]["schema"]["format"] == "uuid"
        statuses = set(operation["responses"])
        expected = GUARD_STATUSES | ({"413", "415"} if "requestBody" in operation else set())
        assert expected <= statuses, (label, expected - statuses)
        for status in statuses - {"default"}:
            if status.startswith(("4", "5")):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == ENVELOPE, (label, status)
                assert content["example"]["success"] is False, (label, status)
    assert seen >= 8


def test_bodies_and_success_responses_have_examples_and_schemas(document):
    for label, _, operation in operations(document, guarded=True):
        if "requestBody" in operation:
            body = operation["requestBody"]["content"]["application/json"]
            assert "example" in body and "schema" in body, label
        for status, response in operation["responses"].items():
            if not status.startswith("2") or label in NO_BODY_DOCUMENTED:
                continue
            content = response["content"]
            assert "example" in content["application/json"], (label, status)
            assert "schema" in content["application/json"], (label, status)


def test_count_responses_document_their_headers_and_both_views(document):
    count = document["paths"][PREFIX + "/ticket/notification/count"]["get"]
    assert {"ETag", "X-Count-Source", "Cache-Control", "X-Poll-Interval"} <= set(
        count["responses"]["200"]["headers"])
    assert "304" in count["responses"]
    # flask-smorest documents ?view and its 400 without parsing it (tally.http.hot_path)
    view = [p for p in count["parameters"] if p["in"] == "query"]
    assert [(p["name"], p["schema"]["enum"]) for p in view] == [("view", ["full", "minimal"])]
    assert "400" in count["responses"]
    envelope = document["components"]["schemas"]["CountEnvelope"]
    assert [one["$ref"] for one in envelope["properties"]["data"]["oneOf"]] == [
        "#/components/schemas/NotificationCounts", "#/components/schemas/MinimalCount"]
    tickets = document["paths"][PREFIX + "/ticket/count"]
    assert "X-Count-Source" in tickets["post"]["responses"]["200"]["headers"]
    assert [p["name"] for p in tickets["parameters"]] == ["issupportrequest", "X-Min-Watermark"]
    assert "422" in tickets["post"]["responses"]


def test_statuses_document_the_headers_http_asks_of_them(document):
    """401: WWW-Authenticate; 429 and 503: Retry-After; POST /filters' 201: Location."""
    wanted = {"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"}
    for label, _, operation in operations(document, guarded=True):
        for status, header in wanted.items():
            documented = operation["responses"].get(status, {}).get("headers", {})
            assert status not in operation["responses"] or header in documented, (label, status)
    created = document["paths"][PREFIX + "/filters"]["post"]["responses"]["201"]
    assert created["headers"]["Location"] == {"$ref": "#/components/headers/Location"}
