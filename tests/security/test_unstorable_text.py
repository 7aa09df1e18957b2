"""Regression: a JSON string holding NUL or an unpaired surrogate was a 500 (PostgreSQL refuses NUL
in text; neither driver encodes a lone surrogate). It is a 400 naming where it is, nothing is
written, and the same body with ordinary text still works."""
from __future__ import annotations

import base64
import json

import pytest

from tally.http.bodies import UNSTORABLE, storable, unstorable_path

pytestmark = pytest.mark.both_databases

API = "/api/v2/ticketing"
TICKET = {"id": "T1", "version": 1, "status": "open", "priority": "low", "teamId": None,
          "assigneeId": None, "requesterId": "u1", "category": "hardware", "tags": ["vip"],
          "isSupportRequest": False, "createdAt": "2026-03-08T06:00:00.000Z", "dueAt": None,
          "slaDueAt": None}


def upsert(**changes) -> dict:
    return {"events": [{"eventId": "6f1c9a52-3b7e-4d0a-9e8f-1a2b3c4d5e6f",
                        "type": "ticket.upserted", "occurredAt": "2026-03-08T06:00:00.000Z",
                        "data": {**TICKET, **changes}}]}


# (url, body with BAD where the character goes, the path the 400 names)
CASES = {
    "filter name": (API + "/filters", {"name": "vip BAD", "conditions": {"all": []}}, "name"),
    "filter value": (API + "/filters", {"name": "vip", "conditions": {"all": [
        {"field": "category", "op": "eq", "value": "BAD"}]}}, "conditions.all[0].value"),
    "read ids": (API + "/ticket/notification/read", {"ids": ["n-1", "BAD"]}, "ids[1]"),
    "event category": (API + "/events", upsert(category="BAD"), "events[0].data.category"),
    "event tag": (API + "/events", upsert(tags=["vip", "BAD"]), "events[0].data.tags[1]"),
}


@pytest.fixture
def caller(headers):
    return headers(user="u1", roles=("ticket_admin", "ticket_service"))


@pytest.mark.parametrize("bad", ["\\u0000", "x\\udfff"], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("case", list(CASES))
def test_unstorable_text_in_a_body_is_a_400_naming_the_field(client, caller, case, bad):
    url, body, path = CASES[case]
    raw = json.dumps(body).replace("BAD", bad)  # escapes as a client's JSON encoder sends them
    response = client.post(url, data=raw, content_type="application/json", headers=caller)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"] == {path: [UNSTORABLE]}
    fine = client.post(url, data=raw.replace(bad, "fine"), content_type="application/json",
                       headers=caller)
    assert fine.status_code < 500 and fine.status_code != 400, fine.get_json()


def test_unstorable_text_in_a_filter_id_is_the_contracts_422_for_a_malformed_id(client, caller):
    raw = json.dumps({"filterIds": ["all", "BAD"], "templateProfileFilterId": "BAD"})
    for bad in ("\\u0000", "\\ud800"):
        response = client.post(API + "/ticket/count?type=template&module=ticketing",
                               data=raw.replace("BAD", bad), content_type="application/json",
                               headers=caller)
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["error"]["code"] == "INVALID_FILTER_ID"


def test_a_cursor_holding_unstorable_text_is_a_400(client, caller):
    for ident in ("n-1\x00", "n-\ud800"):
        raw = json.dumps([1, ident]).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = client.get(f"{API}/ticket/notification/list?cursor={cursor}", headers=caller)
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"]["details"] == {"cursor": ["Not a valid cursor."]}


def test_escaped_backslashes_and_paired_surrogates_are_ordinary_text():
    assert storable("a\\u0000b") and storable("😀") and storable("\ud83d\ude00".encode(
        "utf-16", "surrogatepass").decode("utf-16"))
    assert unstorable_path({"a": ["x", {"b": "y\x00"}]}, "") == "a[1].b"
    assert unstorable_path({"a\x00": 1}, "") == "body"
    assert unstorable_path(["\ud800"], "") == "[0]"
