"""POST /ticket/count: every 400/403/422 of contract §2 in its order, and a ticket_user's reach."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

from tally.core.clock import epoch_ms
from tests.support import oracle
from tally.core.conditions import parse_definition
from tally.core.model import Principal
from tally.core.filters import SYSTEM_FILTERS
from tally.services.outbox import apply_pending
from tally.services.tenants import create_tenant
from tests.support.tokens import REALM
from tests.support.randomdata import random_tickets
from tests.support.tickets import as_events, post_events

URL = "/api/v2/ticketing/ticket/count"
QUERY = "?type=template&module=ticketing"
FILTERS = "/api/v2/ticketing/filters"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NOW = datetime(2026, 5, 12, 9, 41, 7, tzinfo=timezone.utc)
SYSTEM_IDS = [spec.id for spec in SYSTEM_FILTERS]
ADMIN = {"user": "boss", "roles": ("ticket_admin",)}
VIP = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}


def error_of(response, status: int, code: str) -> dict:
    """Assert the contract's error envelope with `status` and `code`; return `error`."""
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"success", "error", "timestamp"}, body
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert TIMESTAMP.match(body["timestamp"]), body["timestamp"]
    return body["error"]


def count(client, hdrs, body, query=QUERY, extra=None):
    return client.post(URL + query, json=body, headers={**hdrs, **(extra or {})})


def make_filter(client, hdrs, conditions, shared=False, name="F") -> str:
    response = client.post(FILTERS, json={"name": name, "conditions": conditions,
                                          "shared": shared}, headers=hdrs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]["id"]


# -- 400: body, query and header ------------------------------------------------------------------

BAD_BODIES = {
    "filterIds missing": {"timezone": "UTC"},
    "filterIds null": {"filterIds": None},
    "filterIds empty": {"filterIds": []},
    "filterIds a string": {"filterIds": "all"},
    "filterIds an object": {"filterIds": {"all": True}},
    "filterIds a number": {"filterIds": 3745},
    "a numeric item": {"filterIds": ["all", 3745]},
    "a null item": {"filterIds": ["all", None]},
    "a list item": {"filterIds": [["all"]]},
    "201 ids": {"filterIds": ["all"] * 201},
    "timezone Mars/Olympus": {"filterIds": ["all"], "timezone": "Mars/Olympus"},
    "timezone empty": {"filterIds": ["all"], "timezone": ""},
    "timezone a directory": {"filterIds": ["all"], "timezone": "America"},
    "timezone too long": {"filterIds": ["all"], "timezone": "Asia/" + "x" * 300},
    "timezone absolute path": {"filterIds": ["all"], "timezone": "/etc/localtime"},
    "timezone a number": {"filterIds": ["all"], "timezone": 530},
    "profile a number": {"filterIds": ["all"], "templateProfileFilterId": 7},
    "body a list": ["all"],
    "body a string": "all",
}


def test_every_invalid_body_is_a_400_validation_error(client, headers):
    hdrs = headers(**ADMIN)
    for case, body in BAD_BODIES.items():
        response = count(client, hdrs, body)
        assert response.status_code == 400, (case, response.get_json())
        error_of(response, 400, "VALIDATION_ERROR")


def test_two_hundred_ids_are_fine_and_the_answer_has_one_entry_per_distinct_id(client, headers):
    ids = (SYSTEM_IDS * 11)[:200]
    response = count(client, headers(**ADMIN), {"filterIds": ids})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert set(data["counts"]) == set(data["filterDetails"]) == set(SYSTEM_IDS)
    assert data["timezone"] == "UTC"


def test_malformed_json_and_bad_query_and_support_header_are_400(client, headers):
    hdrs = headers(**ADMIN)
    raw = client.post(URL + QUERY, data='{"filterIds": ["all",', headers={
        **hdrs, "Content-Type": "application/json"})
    error_of(raw, 400, "VALIDATION_ERROR")
    good = {"filterIds": ["all"]}
    for query in ("?module=ticketing", "?type=admin&module=ticketing", "?type=&module=ticketing",
                  "?type=TEMPLATE&module=ticketing", "?type=template",
                  "?type=template&module=billing", "?type=template&module=", ""):
        error_of(count(client, hdrs, good, query=query), 400, "VALIDATION_ERROR")
    for flag in ("maybe", "yes", "1", ""):
        error_of(count(client, hdrs, good, extra={"issupportrequest": flag}), 400,
                 "VALIDATION_ERROR")
    for flag in ("true", "false", "TRUE", "False"):
        assert count(client, hdrs, good, extra={"issupportrequest": flag}).status_code == 200


def test_the_body_errors_name_what_webargs_named(client, headers):
    """The view loads its body itself (tally.http.hot_path.body_args); the details stay those
    flask-smorest's webargs parser gave: unknown keys refused, an empty body read as {},
    unparseable JSON named as such, the query's 400 first; a body without a JSON Content-Type
    is the 415 of every JSON body (contract §2, tally.http.bodies)."""
    hdrs = headers(**ADMIN)

    def raw(data, content_type="application/json", query=QUERY):
        kinds = {"Content-Type": content_type} if content_type else {}
        return client.post(URL + query, data=data, headers={**hdrs, **kinds})

    missing = {"filterIds": ["Missing data for required field."]}
    assert error_of(count(client, hdrs, {"filterIds": ["all"], "x": 1}), 400,
                    "VALIDATION_ERROR")["details"] == {"x": ["Unknown field."]}
    assert error_of(raw(""), 400, "VALIDATION_ERROR")["details"] == missing
    assert error_of(raw('{"filterIds": ["all"]}', "text/plain"), 415,
                    "UNSUPPORTED_MEDIA_TYPE")["details"] == {"contentType": "text/plain"}
    for bad in (" ", "{", b'{"filterIds": ["\xff"]}'):
        assert error_of(raw(bad), 400, "VALIDATION_ERROR")["details"] == ["Invalid JSON body."]
    assert error_of(raw("[]"), 400, "VALIDATION_ERROR")["details"] == {
        "_schema": ["Invalid input type."]}
    assert error_of(raw("{", query="?type=template"), 400, "VALIDATION_ERROR")["details"] == {
        "module": ["Missing data for required field."]}
    ok = raw('{"filterIds": ["all"]}', "application/json; charset=utf-8")
    assert ok.status_code == 200, ok.get_json()


# -- 403 and its place in the order ----------------------------------------------------------------

def test_a_ticket_user_asking_for_the_agent_view_is_403_before_any_body_or_filter_check(
        client, headers):
    user = headers(user="u1", roles=("ticket_user",), teams=("t0",))
    agent_query = "?type=agent&module=ticketing"
    for body in ({"filterIds": ["all"]}, {"filterIds": []}, {"timezone": "Mars/Olympus"},
                 {"filterIds": ["9999", "not-an-id"]}, ["all"]):
        error_of(count(client, user, body, query=agent_query), 403, "FORBIDDEN")
    error_of(count(client, user, {"filterIds": ["all"]}, query=agent_query,
                   extra={"issupportrequest": "maybe"}), 403, "FORBIDDEN")
    malformed = client.post(URL + agent_query, data="{oops", headers={
        **user, "Content-Type": "application/json"})
    error_of(malformed, 403, "FORBIDDEN")
    # the role the call needs is known from `type` alone, so a bad `module` does not hide it
    error_of(count(client, user, {"filterIds": []}, query="?type=agent&module=billing"), 403,
             "FORBIDDEN")
    # the same user may ask for its own views
    for view in ("user", "template"):
        response = count(client, user, {"filterIds": ["all"]},
                         query=f"?type={view}&module=ticketing")
        assert response.status_code == 200, response.get_json()


def test_without_a_ticket_role_every_view_is_403(client, headers):
    nobody = headers(user="x", roles=("offline_access",))
    for view in ("user", "agent", "template"):
        error_of(count(client, nobody, {"filterIds": []}, query=f"?type={view}&module=ticketing"),
                 403, "FORBIDDEN")


def test_validation_400_comes_before_the_422_for_unknown_ids(client, headers):
    response = count(client, headers(**ADMIN), {"filterIds": ["9999"], "timezone": "Mars/Olympus"})
    error_of(response, 400, "VALIDATION_ERROR")


# -- 422 INVALID_FILTER_ID -------------------------------------------------------------------------

def test_422_lists_exactly_the_ids_the_caller_cannot_use(app, client, headers):
    alice = headers(user="alice", roles=("ticket_agent",))
    bob = headers(user="bob", roles=("ticket_agent",))
    mine = make_filter(client, alice, VIP)
    shared = make_filter(client, bob, VIP, shared=True)
    private = make_filter(client, bob, VIP)
    other_tenant = str(uuid.uuid4())
    create_tenant(app.extensions["tally"].db, other_tenant, "Other", REALM)
    foreign = make_filter(client, headers(user="alice", roles=("ticket_agent",),
                                          tenant=other_tenant), VIP, shared=True)
    unknown_uuid = str(uuid.uuid4())
    ids = ["all", "9999", mine, "ALL", private, "3745", "not a filter", unknown_uuid, shared,
           foreign, "_open", "", "x" * 80, "9999", "-1", "3745.0"]
    error = error_of(count(client, alice, {"filterIds": ids}), 422, "INVALID_FILTER_ID")
    assert error["details"] == {"invalidIds": ["9999", "ALL", private, "not a filter",
                                               unknown_uuid, foreign, "_open", "", "x" * 80,
                                               "-1", "3745.0"]}
    # the same filters work for those who may see them
    ok = count(client, alice, {"filterIds": ["all", mine, shared, "3745"]})
    assert ok.status_code == 200, ok.get_json()
    assert count(client, bob, {"filterIds": [private, shared]}).status_code == 200


def test_a_profile_id_the_caller_cannot_use_is_a_422_naming_it(client, headers):
    alice = headers(user="alice", roles=("ticket_admin",))
    bob = headers(user="bob", roles=("ticket_admin",))
    private = make_filter(client, bob, VIP)
    unknown = str(uuid.uuid4())
    for profile in ("9999", unknown, private, "not-a-uuid", ""):
        error = error_of(count(client, alice, {"filterIds": ["all"],
                                               "templateProfileFilterId": profile}),
                         422, "INVALID_FILTER_ID")
        assert error["details"] == {"invalidIds": [profile]}, profile
    error = error_of(count(client, alice, {"filterIds": ["all", "8888"],
                                           "templateProfileFilterId": unknown}),
                     422, "INVALID_FILTER_ID")
    assert error["details"] == {"invalidIds": ["8888", unknown]}
    ok = count(client, bob, {"filterIds": ["all"], "templateProfileFilterId": private})
    assert ok.status_code == 200, ok.get_json()


def test_a_profile_holding_a_time_condition_is_a_400_with_the_reason(client, headers):
    admin = headers(**ADMIN)
    timed = make_filter(client, admin, {"all": [
        {"field": "priority", "op": "eq", "value": "high"},
        {"field": "createdAt", "op": "within_last", "value": "90m"}]})
    for profile in (timed, "5932", "7440", "7475"):  # custom, Created Today, Overdue, At Risk
        error = error_of(count(client, admin, {"filterIds": ["all"],
                                               "templateProfileFilterId": profile}),
                         400, "VALIDATION_ERROR")
        assert "time condition" in error["message"] + str(error["details"]), (profile, error)
    # a time filter may still be counted, and a static one may be the profile
    ok = count(client, admin, {"filterIds": ["all", timed, "5932"],
                               "templateProfileFilterId": "4196"})
    assert ok.status_code == 200, ok.get_json()


# -- a ticket_user only ever counts their own tickets ---------------------------------------------

def test_a_ticket_user_counts_only_their_own_tickets_whatever_filters_or_profile(
        app, client, headers, tenant_id):
    services = app.extensions["tally"]
    services.clock = lambda: NOW
    tickets = random_tickets(seed=23, n=120, now_ms=epoch_ms(NOW))
    post_events(client, headers(user="svc", roles=("ticket_service",)), as_events(tickets))
    apply_pending(services, tenant_id)
    admin = headers(**ADMIN)
    wide = {  # shared by someone else, each reaching past the user's own tickets
        "team": {"all": [{"field": "teamId", "op": "in", "value": "$myTeams"}]},
        "assigned": {"any": [{"field": "assigneeId", "op": "eq", "value": "$me"},
                             {"field": "requesterId", "op": "ne", "value": "$me"}]},
        "others": {"all": [{"field": "requesterId", "op": "not_in", "value": ["$me"]}]},
        "recent": {"all": [{"field": "priority", "op": "ne", "value": "low"},
                           {"field": "createdAt", "op": "within_last", "value": "2d"}]},
    }
    ids = {name: make_filter(client, admin, conditions, shared=True, name=name)
           for name, conditions in wide.items()}
    profile = make_filter(client, admin, {"any": [
        {"field": "teamId", "op": "in", "value": "$myTeams"},
        {"field": "assigneeId", "op": "eq", "value": "$me"},
        {"field": "priority", "op": "in", "value": ["critical", "high"]}]}, shared=True)
    definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS}
    definitions.update({ids[name]: parse_definition(c) for name, c in wide.items()})
    requested = list(definitions)
    profile_definition = definitions_of(client, admin, profile)
    checked_nonzero = False
    for user, teams in (("u1", ("t0", "t1")), ("auth0|u2", ("t|3",))):
        principal = Principal(user, tenant_id, REALM, frozenset({"ticket_user"}), teams)
        hdrs = headers(user=user, roles=("ticket_user",), teams=teams)
        own = [t for t in tickets if t["requesterId"] == user and not t["deleted"]]
        for view in ("template", "user"):
            for profile_id, profile_def in ((None, None), (profile, profile_definition)):
                response = count(client, hdrs, {"filterIds": requested, "timezone": "UTC",
                                                "templateProfileFilterId": profile_id},
                                 query=f"?type={view}&module=ticketing")
                assert response.status_code == 200, response.get_json()
                data = response.get_json()["data"]
                counts, summary = oracle.count(tickets, principal, view, definitions,
                                               profile_def, epoch_ms(NOW), "UTC", False)
                assert data["counts"] == counts, (user, view, profile_id)
                assert data["summary"] == summary, (user, view, profile_id)
                assert data["counts"][ids["others"]] == 0  # never someone else's ticket
                if profile_id is None:
                    assert data["counts"]["all"] == len(own), (user, view)
                    checked_nonzero = checked_nonzero or len(own) > 0
    assert checked_nonzero  # the data gives the users tickets of their own
    everything = count(client, admin, {"filterIds": ["all", ids["others"]]}).get_json()["data"]
    assert everything["counts"]["all"] > len(own) and everything["counts"][ids["others"]] > 0


def definitions_of(client, hdrs, filter_id):
    """The stored definition of a filter as GET /filters shows it, parsed."""
    items = client.get(FILTERS, headers=hdrs).get_json()["data"]["items"]
    return parse_definition(next(i for i in items if i["id"] == filter_id)["conditions"])


def test_an_agent_asking_for_an_unknown_id_gets_422_not_403(client, headers):
    agent = headers(user="u1", roles=("ticket_agent",), teams=("t0",))
    error = error_of(count(client, agent, {"filterIds": ["all", "4242"]},
                           query="?type=agent&module=ticketing"), 422, "INVALID_FILTER_ID")
    assert error["details"] == {"invalidIds": ["4242"]}
