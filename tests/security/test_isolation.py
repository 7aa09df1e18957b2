"""Isolation: tenants and users never see each other's counts, a ticket_user counts only their own
tickets whatever filters and profiles they pass, and no user-controlled string reaches a Redis key
or the text of a SQL statement."""
from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
from sqlalchemy import event

from tally.core.clock import epoch_ms
from tests.support import oracle
from tally.core.conditions import parse_definition
from tally.core.model import Principal
from tally.core.filters import SYSTEM_FILTERS
from tally.services.outbox import apply_pending
from tally.services.tenants import create_tenant
from tests.support.tokens import REALM
from tests.support.randomdata import TEAMS, random_tickets
from tests.support import random_filters
from tests.support.tickets import as_events, post_events

pytestmark = pytest.mark.both_databases

API = "/api/v2/ticketing"
COUNT = API + "/ticket/count?type={}&module=ticketing"
NOTIFICATIONS = API + "/ticket/notification/count"
NOW = datetime(2026, 3, 8, 6, 45, 30, 125000, tzinfo=timezone.utc)
SERVICE = {"user": "svc", "roles": ("ticket_service",)}
ADMIN = {"user": "boss", "roles": ("ticket_admin",)}


def notification(note_id: str, user: str, type_: str = "mention") -> dict:
    return {"eventId": str(uuid.uuid4()), "type": "notification.created",
            "occurredAt": "2026-03-08T06:00:00.000Z",
            "data": {"id": note_id, "userId": user, "type": type_, "ticketId": "T1",
                     "priority": "high", "createdAt": "2026-03-08T06:00:00.000Z"}}


def ingest(services, client, headers, tenant: str, events: list[dict]) -> None:
    post_events(client, headers(tenant=tenant, **SERVICE), events)
    apply_pending(services, tenant)


def badge(client, headers, tenant: str, user: str) -> dict:
    response = client.get(NOTIFICATIONS, headers=headers(user=user, tenant=tenant))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def requested_by(user: str, tickets: list[dict]) -> list[dict]:
    return [dict(ticket, requesterId=user, deleted=False) for ticket in tickets]


def tenant_tags(raw) -> set[str]:
    """The hash tags of every tally counter key (the tenant each key belongs to)."""
    tags = set()
    for key in raw.scan_iter("tally:*"):
        if key.startswith("tally:stats:"):  # process-wide statistics, no tenant data
            continue
        assert key.startswith("tally:{") and "}:" in key, key
        tags.add(key[len("tally:{"):key.index("}:")])
    return tags


# -- tenants and users ---------------------------------------------------------------------------

def test_the_same_user_id_in_two_tenants_and_two_users_in_one_never_share_counts(
        app, services, client, headers, tenant_id, raw):
    # Given tenant A where u1 has 3 notifications and u2 has 5, and tenant B where u1 has 7,
    # and tickets requested by u1 in both tenants
    other = str(uuid.uuid4())
    create_tenant(services.db, other, "Tenant B", REALM)
    now = epoch_ms(NOW)
    ingest(services, client, headers, tenant_id,
           [notification(f"a-{i}", "u1") for i in range(3)]
           + [notification(f"b-{i}", "u2", "comment") for i in range(5)]
           + as_events(requested_by("u1", random_tickets(1, 4, now))))
    ingest(services, client, headers, other,  # the same notification and ticket ids
           [notification(f"a-{i}", "u1") for i in range(7)]
           + as_events(requested_by("u1", random_tickets(2, 9, now))))

    # When each reads, and u2 of A marks u1's ids (and B's) as read
    before = badge(client, headers, tenant_id, "u1")
    marked = client.post(API + "/ticket/notification/read", json={"ids": ["a-0", "a-1", "a-5"]},
                         headers=headers(user="u2"))

    # Then every count is the caller's own, in the caller's tenant
    assert marked.status_code == 200
    assert marked.get_json()["data"]["unread"] == 5
    assert (before["total"], before["unread"]) == (3, 3)
    assert badge(client, headers, tenant_id, "u1")["unread"] == 3
    assert badge(client, headers, other, "u1")["unread"] == 7
    assert badge(client, headers, tenant_id, "u2")["byType"]["comment"] == 5
    listed = client.get(API + "/ticket/notification/list?limit=100", headers=headers(user="u1"))
    assert sorted(item["id"] for item in listed.get_json()["data"]["items"]) == \
        ["a-0", "a-1", "a-2"]
    for tenant, live in ((tenant_id, 4), (other, 9)):
        own = client.post(COUNT.format("user"), json={"filterIds": ["all"]},
                          headers=headers(user="u1", tenant=tenant))
        assert own.get_json()["data"]["counts"]["all"] == live
        theirs = client.post(COUNT.format("user"), json={"filterIds": ["all"]},
                             headers=headers(user="u2", tenant=tenant))
        assert theirs.get_json()["data"]["counts"]["all"] == 0
    # and every counter key carries one of the two tenants' hash tags
    assert tenant_tags(raw) == {tenant_id, other}


# -- a ticket_user, whatever filters and profiles ------------------------------------------------

SEED = 8_2026
USERS_UNDER_TEST = ("u1", "auth0|u2", "u4")


def test_a_ticket_user_counts_exactly_their_own_tickets_under_random_filters_and_profiles(
        services, client, headers, tenant_id):
    # Given 150 random tickets, 10 random custom filters (shared by an admin, or the user's own,
    # a third of them timed) and 3 random static profiles shared by an admin
    services.clock = lambda: NOW
    now = epoch_ms(NOW)
    rng = random.Random(SEED)
    tickets = random_tickets(SEED, 150, now)
    ingest(services, client, headers, tenant_id, as_events(tickets))
    definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS}
    admin = headers(**ADMIN)

    def create(hdrs, conditions) -> str:
        made = client.post(API + "/filters", headers=hdrs, json={
            "name": f"random {len(definitions)}", "shared": True, "conditions": conditions})
        assert made.status_code == 201, (conditions, made.get_json())
        return made.get_json()["data"]["id"]

    shared = {}
    for _ in range(10):
        conditions = random_filters.definition(rng, timed=rng.random() < 0.33)
        shared[create(admin, conditions)] = parse_definition(conditions)
    definitions.update(shared)
    profiles = {None: None}
    for _ in range(3):
        conditions = random_filters.definition(rng)
        profiles[create(admin, conditions)] = parse_definition(conditions)

    checked = nonzero = 0
    for user in USERS_UNDER_TEST:
        teams = tuple(rng.sample(TEAMS, rng.randint(0, 3)))
        principal = Principal(user, tenant_id, REALM, frozenset({"ticket_user"}), teams)
        hdrs = headers(user=user, roles=("ticket_user",), teams=teams)
        own_conditions = random_filters.definition(rng, timed=True)
        mine = {create(hdrs, own_conditions): parse_definition(own_conditions)}
        asked = {**definitions, **mine}
        own_tickets = [t for t in tickets if t["requesterId"] == user]
        for view in ("template", "user"):
            for profile_id, profile in profiles.items():
                support = rng.random() < 0.5
                zone = rng.choice(("UTC", "Asia/Calcutta", "Pacific/Chatham"))
                # When the user asks for every filter within the view, profile and support flag
                response = client.post(COUNT.format(view), json={
                    "filterIds": list(asked), "timezone": zone,
                    "templateProfileFilterId": profile_id},
                    headers={**hdrs, "issupportrequest": str(support).lower()})
                # Then the counts are the oracle's over the user's own tickets only
                assert response.status_code == 200, response.get_json()
                data = response.get_json()["data"]
                counts, summary = oracle.count(own_tickets, principal, view, asked, profile,
                                               now, zone, support)
                where = (user, teams, view, profile_id, support, zone)
                assert data["counts"] == counts, where
                assert data["summary"] == summary, where
                checked += 1
                nonzero += data["counts"]["all"] > 0
    assert checked == len(USERS_UNDER_TEST) * 2 * len(profiles)
    assert nonzero > checked // 4  # the data gives the users tickets of their own to count


# -- no user-controlled string in a Redis key or a SQL statement ---------------------------------

MARK = "EVIL"
HOSTILE = (f"{MARK}'}}{{*", f"{MARK}' OR '1'='1' --", f"{MARK}\r\nFLUSHALL", f"{MARK}%_\\",
           f"{MARK}:{{00000000-0000-4000-8000-000000000000}}:ncount:u1")


@pytest.fixture
def statements(services):
    """Every SQL statement text the app's engine runs (parameters not included)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(services.db.engine, "before_cursor_execute", record)


def cursor_of(created_ms: int, ident: str) -> str:
    raw = json.dumps([created_ms, ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_hostile_strings_are_refused_or_stay_data_never_keys_or_sql(
        services, client, headers, make_token, tenant_id, raw, statements):
    # Given a user with two unread notifications and a warm badge
    ingest(services, client, headers, tenant_id,
           [notification("n-1", "u1"), notification("n-2", "u1")])
    user = headers(user="u1")
    assert badge(client, headers, tenant_id, "u1")["unread"] == 2
    answers = {}
    for hostile in HOSTILE:
        # When every user-controlled input carries a hostile string
        in_header = hostile.replace("\r\n", " ")  # no HTTP client sends a newline in a header
        hostile_token = {"Authorization": f"Bearer {make_token(tenant_id, user=hostile)}"}
        team_token = {"Authorization": "Bearer " + make_token(tenant_id, teams=[hostile])}
        calls = {
            "sub claim": client.get(NOTIFICATIONS, headers={**user, **hostile_token}),
            "teams claim": client.get(NOTIFICATIONS, headers={**user, **team_token}),
            "x-tenantid": client.get(NOTIFICATIONS, headers={**user, "x-tenantid": in_header}),
            "realmname": client.get(NOTIFICATIONS, headers={**user, "realmname": in_header}),
            "filterIds": client.post(COUNT.format("user"), json={"filterIds": ["all", hostile]},
                                     headers=user),
            "profile": client.post(COUNT.format("user"), headers=user, json={
                "filterIds": ["all"], "templateProfileFilterId": hostile}),
            "timezone": client.post(COUNT.format("user"), headers=user, json={
                "filterIds": ["all"], "timezone": hostile}),
            "delete path": client.delete(f"{API}/filters/{quote(hostile, safe='')}",
                                         headers=user),
            "read ids": client.post(API + "/ticket/notification/read", json={"ids": [hostile]},
                                    headers=user),
            "list cursor": client.get(f"{API}/ticket/notification/list?cursor="
                                      f"{cursor_of(epoch_ms(NOW), hostile)}", headers=user),
            "list type": client.get(f"{API}/ticket/notification/list?type={quote(hostile)}",
                                    headers=user),
            "event ids": client.post(API + "/events", headers=headers(**SERVICE),
                                     json={"events": [notification(hostile, hostile)]}),
            "filter name and value": client.post(API + "/filters", headers=user, json={
                "name": hostile, "conditions": {"all": [
                    {"field": "category", "op": "eq", "value": hostile}]}}),
        }
        answers[hostile] = {name: r.status_code for name, r in calls.items()}
        made = calls["filter name and value"].get_json()["data"]["id"]
        counted = client.post(COUNT.format("user"), json={"filterIds": ["all", made]},
                              headers=user)
        assert counted.status_code == 200 and counted.get_json()["data"]["counts"][made] == 0

    # Then each is refused with a 4xx, or (ids, cursor, a filter's name and values) stays data
    expected = {"sub claim": 401, "teams claim": 401, "x-tenantid": 400, "realmname": 400,
                "filterIds": 422, "profile": 422, "timezone": 400, "delete path": 404,
                "read ids": 200, "list cursor": 200, "list type": 400, "event ids": 400,
                "filter name and value": 201}
    assert answers == {hostile: expected for hostile in HOSTILE}
    assert badge(client, headers, tenant_id, "u1")["unread"] == 2  # nothing else was marked
    assert not [key for key in raw.scan_iter("*") if MARK in key]
    assert tenant_tags(raw) == {tenant_id}
    assert statements and not [text for text in statements if MARK in text]
