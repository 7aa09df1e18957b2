"""The filters endpoints: listing per caller, creating with validation, deleting one's own."""
from __future__ import annotations

import uuid

import pytest

from tally.core.filters import SYSTEM_FILTERS
from tally.services.tenants import create_tenant
from tests.support.tokens import REALM

FILTERS = "/api/v2/ticketing/filters"
VIP = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}


def create(client, headers, user="user-1", **body):
    body = {"name": "VIP", "conditions": VIP} | body
    return client.post(FILTERS, json=body, headers=headers(user))


def listed(client, headers, user="user-1", tenant=None) -> list[dict]:
    response = client.get(FILTERS, headers=headers(user, tenant=tenant))
    assert response.status_code == 200
    return response.get_json()["data"]["items"]


def custom_names(items: list[dict]) -> list[str]:
    """Custom filter names, sorted: two created in the same millisecond have no fixed order."""
    return sorted(item["name"] for item in items if item["type"] == "custom")


def test_the_list_holds_the_system_filters_with_the_documents_ids_and_colours(client, headers):
    response = client.get(FILTERS, headers=headers())
    body = response.get_json()
    assert body["success"] is True and body["message"] == "Filters retrieved successfully"
    items = {item["id"]: item for item in body["data"]["items"]}
    assert [item["id"] for item in body["data"]["items"]] == [s.id for s in SYSTEM_FILTERS]
    assert items["3745"] == {"id": "3745", "name": "Open", "type": "status", "color": "#3B82F6",
                             "conditions": {"all": [{"field": "status", "op": "eq",
                                                     "value": "open"}]}}
    assert items["7471"]["name"] == "Assigned to Me"
    assert items["7471"]["type"] == "assignment"
    assert "color" not in items["7471"] and "shared" not in items["7471"]  # omitted, not null
    assert items["all"] == {"id": "all", "name": "All Tickets", "type": "system",
                            "conditions": {"all": []}}


def test_the_list_shows_own_and_shared_filters_not_another_users_private_ones(client, headers):
    create(client, headers, "alice", name="Alice private")
    create(client, headers, "bob", name="Bob shared", shared=True)
    create(client, headers, "bob", name="Bob private")
    assert custom_names(listed(client, headers, "alice")) == ["Alice private", "Bob shared"]
    assert custom_names(listed(client, headers, "bob")) == ["Bob private", "Bob shared"]
    assert custom_names(listed(client, headers, "carol")) == ["Bob shared"]


def test_create_answers_201_with_the_stored_filter(client, headers):
    response = create(client, headers, name="Urgent mine", color="#FF8800", shared=True,
                      conditions={"any": [{"field": "priority", "op": "in",
                                           "value": ["critical", "high"]},
                                          {"field": "assigneeId", "op": "eq", "value": "$me"}]})
    assert response.status_code == 201
    body = response.get_json()
    assert body["message"] == "Filter created successfully"
    item = body["data"]
    assert uuid.UUID(item["id"]).version == 4
    assert item == {"id": item["id"], "name": "Urgent mine", "type": "custom",
                    "color": "#FF8800", "shared": True, "conditions": {"any": [
                        {"field": "priority", "op": "in", "value": ["critical", "high"]},
                        {"field": "assigneeId", "op": "eq", "value": "$me"}]}}
    assert item in listed(client, headers)


def test_a_created_filter_is_private_by_default_and_stored_canonically(client, headers):
    conditions = {"all": [{"field": "createdAt", "op": "within_last", "value": "1440m"},
                          {"field": "assigneeId", "op": "is_null", "value": None}]}
    item = create(client, headers, conditions=conditions).get_json()["data"]
    assert item["shared"] is False and "color" not in item
    assert item["conditions"] == {"all": [{"field": "assigneeId", "op": "is_null"},
                                          {"field": "createdAt", "op": "within_last",
                                           "value": "1d"}]}


@pytest.mark.parametrize("conditions, path, reason", [
    ({"all": [{"field": "colour", "op": "eq", "value": "x"}]},
     "conditions.all[0].field", "'colour' is not one of"),
    ({"all": [{"field": "status", "op": "like", "value": "open"}]},
     "conditions.all[0].op", "'like' is not one of"),
    ({"all": [{"field": "dueAt", "op": "within_next", "value": "2 weeks"}]},
     "conditions.all[0].value", "'2 weeks' is not a duration"),
    ({"all": [{"field": "dueAt", "op": "before_now"}, {"field": "createdAt", "op": "today"}]},
     "conditions.all[1]", "only one time condition is allowed"),
    ({"any": [{"field": "dueAt", "op": "before_now"}, {"field": "status", "op": "eq",
                                                       "value": "open"}]},
     "conditions.any[0]", 'allowed only at the top level of an "all"'),
    ({"all": [{"any": [{"field": "createdAt", "op": "today"}]}]},
     "conditions.all[0].any[0]", "allowed only at the top level"),
    ({"all": [{"field": "category", "op": "eq", "value": "$me"}]},
     "conditions.all[0].value", "'$me' is not a placeholder for category"),
    ({"all": [{"field": "teamId", "op": "eq", "value": "$myTeams"}]},
     "conditions.all[0].value", "$myTeams is a list"),
    ({"none": []}, "conditions", 'exactly one key, "all" or "any"'),
    ("status = open", "conditions", 'exactly one key, "all" or "any"'),
])
def test_a_bad_definition_is_400_naming_the_path_and_reason(client, headers, conditions, path,
                                                            reason):
    response = create(client, headers, conditions=conditions)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == [path]
    assert reason in error["details"][path][0]
    assert custom_names(listed(client, headers)) == []


@pytest.mark.parametrize("body, field, reason", [
    ({"name": "x" * 201}, "name", "Length must be between 1 and 200"),
    ({"name": ""}, "name", "Length must be between 1 and 200"),
    ({"name": "   "}, "name", "must not be blank"),
    ({"color": "blue"}, "color", "#RRGGBB"),
    ({"color": "#12345"}, "color", "#RRGGBB"),
    ({"shared": "perhaps"}, "shared", "Not a valid boolean"),
    ({"owner": "bob"}, "owner", "Unknown field"),
    ({"conditions": None}, "conditions", "Field may not be null"),
])
def test_a_bad_field_is_400_naming_the_field(client, headers, body, field, reason):
    response = create(client, headers, **body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert reason in " ".join(error["details"][field])


def test_a_missing_name_and_a_bad_definition_are_reported_together(client, headers):
    response = client.post(FILTERS, json={"conditions": {"all": [{"field": "x", "op": "eq"}]}},
                           headers=headers())
    details = response.get_json()["error"]["details"]
    assert response.status_code == 400
    assert set(details) == {"name", "conditions.all[0].field"}


@pytest.mark.parametrize("data", ["{not json", "[]", '"a string"'])
def test_a_malformed_body_is_400(client, headers, data):
    response = client.post(FILTERS, data=data, content_type="application/json",
                           headers=headers())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_an_owner_deletes_their_filter_and_it_is_gone(client, headers):
    fid = create(client, headers, "alice", shared=True).get_json()["data"]["id"]
    response = client.delete(f"{FILTERS}/{fid}", headers=headers("alice"))
    assert response.status_code == 200
    assert response.get_json()["data"] == {"id": fid, "deleted": True}
    assert custom_names(listed(client, headers, "alice")) == []
    assert custom_names(listed(client, headers, "bob")) == []
    again = client.delete(f"{FILTERS}/{fid}", headers=headers("alice"))
    assert again.status_code == 404
    assert again.get_json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("filter_id", ["3745", "all", "7471"])
def test_deleting_a_system_filter_is_forbidden(client, headers, filter_id):
    response = client.delete(f"{FILTERS}/{filter_id}", headers=headers())
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "FORBIDDEN"
    assert filter_id in [item["id"] for item in listed(client, headers)]


def test_deleting_another_users_shared_filter_is_forbidden(client, headers):
    fid = create(client, headers, "bob", shared=True).get_json()["data"]["id"]
    response = client.delete(f"{FILTERS}/{fid}", headers=headers("alice"))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "FORBIDDEN"
    assert custom_names(listed(client, headers, "bob")) == ["VIP"]


@pytest.mark.parametrize("which", ["private", "unknown", "malformed"])
def test_deleting_what_the_caller_cannot_see_is_404(client, headers, which):
    fid = create(client, headers, "bob").get_json()["data"]["id"]
    target = {"private": fid, "unknown": str(uuid.uuid4()), "malformed": "no such id"}[which]
    response = client.delete(f"{FILTERS}/{target}", headers=headers("alice"))
    assert response.status_code == 404
    assert response.get_json()["error"] == {"code": "NOT_FOUND",
                                            "message": f"Filter {target} does not exist",
                                            "details": {"id": target}}
    assert custom_names(listed(client, headers, "bob")) == ["VIP"]


def test_one_tenants_custom_filters_never_appear_in_another(app, client, headers):
    other = str(uuid.uuid4())
    create_tenant(app.extensions["tally"].db, other, "Tenant B", REALM)
    fid = create(client, headers, "alice", shared=True).get_json()["data"]["id"]
    theirs = listed(client, headers, "alice", tenant=other)
    assert [item["id"] for item in theirs] == [spec.id for spec in SYSTEM_FILTERS]
    response = client.delete(f"{FILTERS}/{fid}", headers=headers("alice", tenant=other))
    assert response.status_code == 404
    assert custom_names(listed(client, headers, "alice")) == ["VIP"]


@pytest.mark.parametrize("role", ["ticket_user", "ticket_agent", "ticket_admin",
                                  "ticket_service"])
def test_every_ticket_role_may_use_filters(client, headers, role):
    response = client.post(FILTERS, json={"name": "VIP", "conditions": VIP},
                           headers=headers("alice", roles=(role,)))
    assert response.status_code == 201
    assert client.get(FILTERS, headers=headers("alice", roles=(role,))).status_code == 200


def test_a_token_without_a_ticket_role_is_forbidden(client, headers):
    response = client.get(FILTERS, headers=headers(roles=("reporting",)))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "FORBIDDEN"


def test_the_filters_paths_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert set(paths["/api/v2/ticketing/filters"]) >= {"get", "post"}
    assert "delete" in paths["/api/v2/ticketing/filters/{filter_id}"]


def test_a_deleted_filter_stops_resolving_for_counts_at_once(app, client, headers, tenant_id):
    fid = create(client, headers, "alice").get_json()["data"]["id"]
    svc = app.extensions["tally"]
    assert fid in svc.filter_catalog.resolve(svc, tenant_id, "alice", [fid])[0]
    client.delete(f"{FILTERS}/{fid}", headers=headers("alice"))
    assert svc.filter_catalog.resolve(svc, tenant_id, "alice", [fid]) == ({}, [fid])
