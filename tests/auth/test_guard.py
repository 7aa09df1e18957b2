"""The request guard: every row of the contract's §2 table, their order, roles and the envelope."""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from tally.auth.guard import PREFIX, require_roles
from tally.core.model import ROLES
from tally.services.tenants import create_tenant
from tally.stores.sql.models import Tenant
from tests.support.tokens import claims, ec_key, write_jwks
from tests.support.tokens import REALM

ES_REALM = "es-realm"
ES_ISSUER = "https://es.invalid/realms/es"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def es_key():
    return ec_key("es-1")


@pytest.fixture
def two_realms(tmp_path, realms_file, es_key) -> str:
    """The dev realm (RS256, audience) plus an ES256 realm without audience."""
    realms = json.loads(Path(realms_file).read_text())
    realms[ES_REALM] = {"issuer": ES_ISSUER, "jwks_file": write_jwks(tmp_path / "es.json", es_key)}
    path = tmp_path / "realms.json"
    path.write_text(json.dumps(realms))
    return str(path)


def whoami() -> dict:
    principal = g.principal
    return {"user": principal.user_id, "tenant": principal.tenant_id, "realm": principal.realm,
            "roles": sorted(principal.roles), "teams": list(principal.teams)}


def boom() -> dict:
    raise RuntimeError("secret internal detail")


class Query(Schema):
    n = fields.Int(required=True)


def probe_blueprint() -> Blueprint:
    blp = Blueprint("guard_probe", __name__, url_prefix=PREFIX)

    @blp.route("/_smorest")
    class Probe(MethodView):
        @require_roles("ticket_admin")
        @blp.arguments(Query, location="query")
        @blp.response(200)
        def get(self, args):
            return {"n": args["n"]}

    return blp


@pytest.fixture
def app(make_app, two_realms):
    """An app with probe routes under the guarded prefix (registered before the first request)."""
    app = make_app(REALMS_FILE=two_realms)
    app.add_url_rule(f"{PREFIX}/_probe", "probe", require_roles(*ROLES)(whoami))
    app.add_url_rule(f"{PREFIX}/_open", "open_probe", whoami)
    app.add_url_rule(f"{PREFIX}/_service", "service_probe", require_roles("ticket_service")(whoami))
    app.add_url_rule(f"{PREFIX}/_boom", "boom", boom)
    app.extensions["tally_api"].register_blueprint(probe_blueprint())
    return app


@pytest.fixture
def db(app):
    return app.extensions["tally"].db


@pytest.fixture
def other_tenant(db) -> str:
    """A second tenant of the dev realm."""
    tenant = str(uuid.uuid4())
    create_tenant(db, tenant, "Other tenant", REALM)
    return tenant


@pytest.fixture
def es_tenant(db) -> str:
    """A tenant provisioned in the ES256 realm."""
    tenant = str(uuid.uuid4())
    create_tenant(db, tenant, "ES tenant", ES_REALM)
    return tenant


def es_headers(es_key, tenant: str, **claim_changes) -> dict:
    body = claims(ES_ISSUER, None, **{"tenant_id": tenant, **claim_changes})
    return {"Authorization": f"Bearer {es_key.sign(body)}", "x-tenantid": tenant,
            "realmname": ES_REALM}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    return body


# -- success -------------------------------------------------------------------------------------
def test_valid_call_sets_the_principal(client, headers, tenant_id):
    response = client.get(f"{PREFIX}/_probe", headers=headers("agent-1", ["ticket_agent"], ["t1"]))
    assert response.status_code == 200
    assert response.get_json() == {"user": "agent-1", "tenant": tenant_id, "realm": REALM,
                                   "roles": ["ticket_agent"], "teams": ["t1"]}


def test_tenant_header_is_normalised_to_lowercase(client, headers, tenant_id):
    call = headers()
    call["x-tenantid"] = tenant_id.upper()
    response = client.get(f"{PREFIX}/_probe", headers=call)
    assert response.status_code == 200
    assert response.get_json()["tenant"] == tenant_id


def test_es256_realm_is_accepted(client, es_key, es_tenant):
    response = client.get(f"{PREFIX}/_probe", headers=es_headers(es_key, es_tenant))
    assert response.status_code == 200
    assert response.get_json()["realm"] == ES_REALM


def test_tenants_list_claim_grants_each_listed_tenant(client, es_key, es_tenant):
    call = es_headers(es_key, es_tenant, tenant_id=None, tenants=[str(uuid.uuid4()), es_tenant])
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200


def test_lowercase_bearer_scheme_is_accepted(client, headers):
    call = headers()
    call["Authorization"] = call["Authorization"].replace("Bearer", "bearer")
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200


def test_paths_outside_the_prefix_are_not_guarded(client):
    assert client.get("/healthz", headers={"accept": "text/html"}).status_code == 200
    assert_error(client.get("/api/v2/ticketingx/_probe"), 404, "NOT_FOUND")


# -- 406 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/json",
                                    "text/html, application/json;q=0.5", "", None])
def test_accept_admitting_json_passes(client, headers, accept):
    call = headers()
    if accept is None:
        del call["accept"]
    else:
        call["accept"] = accept
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200


@pytest.mark.parametrize("accept", ["text/html", "application/json;q=0, */*", "*/*;q=0",
                                    "text/event-stream"])
def test_accept_refusing_json_is_406(client, headers, accept):
    call = headers()
    call["accept"] = accept
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 406, "NOT_ACCEPTABLE")


def test_stream_path_admits_event_stream(client, headers):
    call = headers()
    call["accept"] = "text/event-stream"
    # Past the guard; no such route exists in this test app.
    assert_error(client.get(f"{PREFIX}/ticket/notification/_probe/stream", headers=call),
                 404, "NOT_FOUND")


# -- 400 INVALID_HEADER --------------------------------------------------------------------------
@pytest.mark.parametrize("header, value", [
    ("x-tenantid", None), ("x-tenantid", "not-a-uuid"), ("x-tenantid", ""),
    ("x-tenantid", "12345678-1234-1234-1234-1234567890abc"),
    ("realmname", None), ("realmname", ""), ("realmname", "bad realm!"), ("realmname", "r" * 65),
])
def test_missing_or_malformed_header_is_400(client, headers, header, value):
    call = headers()
    if value is None:
        del call[header]
    else:
        call[header] = value
    body = assert_error(client.get(f"{PREFIX}/_probe", headers=call), 400, "INVALID_HEADER")
    assert body["error"]["details"] == {"header": header}


# -- 404 REALM_NOT_FOUND -------------------------------------------------------------------------
def test_unknown_realm_is_404(client, headers):
    call = headers()
    call["realmname"] = "no-such-realm"
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 404, "REALM_NOT_FOUND")


# -- 401 UNAUTHORIZED ----------------------------------------------------------------------------
@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer not.a.jwt", "Bearer a b",
])
def test_missing_or_malformed_token_is_401(client, headers, authorization):
    call = headers()
    if authorization is None:
        del call["Authorization"]
    else:
        call["Authorization"] = authorization
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 401, "UNAUTHORIZED")


def test_expired_token_is_401(client, make_token, tenant_id, headers):
    call = headers()
    call["Authorization"] = f"Bearer {make_token(tenant_id, ttl=-120)}"
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 401, "UNAUTHORIZED")


def test_tampered_token_is_401(client, headers):
    call = headers()
    head, payload, signature = call["Authorization"].split(".")
    call["Authorization"] = ".".join([head, payload, signature[::-1]])
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 401, "UNAUTHORIZED")


def test_token_of_another_realm_is_401(client, es_key, es_tenant, headers, tenant_id):
    # An ES-realm token presented for the dev realm: wrong issuer, unknown key.
    call = headers()
    call["Authorization"] = es_headers(es_key, tenant_id)["Authorization"]
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 401, "UNAUTHORIZED")


def test_token_of_a_realm_sharing_the_keys_is_401_for_the_other_realm(
        make_app, realms_file, tmp_path, headers):
    # Two realms behind one identity provider publish the same keys: only `iss` tells them
    # apart, so realm A's valid token (and its tenant claim) buys nothing in realm B.
    realms = json.loads(Path(realms_file).read_text())
    realms["twin"] = dict(realms[REALM], issuer="https://tally.invalid/realms/twin")
    path = tmp_path / "twin-realms.json"
    path.write_text(json.dumps(realms))
    app = make_app(REALMS_FILE=str(path))
    twin_tenant = str(uuid.uuid4())
    create_tenant(app.extensions["tally"].db, twin_tenant, "Twin tenant", "twin")
    call = headers(tenant=twin_tenant)  # a dev-realm token naming the twin realm's tenant
    assert_error(client_get(app, call), 404, "TENANT_NOT_FOUND")  # the dev realm: not its tenant
    call["realmname"] = "twin"
    assert_error(client_get(app, call), 401, "UNAUTHORIZED")


def client_get(app, call):
    return app.test_client().get(f"{PREFIX}/ticket/notification/count", headers=call)


@pytest.mark.parametrize("change", [
    pytest.param(lambda now: {"iss": "https://es.invalid/realms/other"}, id="wrong-iss"),
    pytest.param(lambda now: {"exp": now - 120}, id="expired"),
    pytest.param(lambda now: {"nbf": now + 600}, id="not-yet-valid"),
])
def test_invalid_es_claims_are_401(client, es_key, es_tenant, change):
    # Times are taken when the test runs, not when it is collected (a long suite runs it later).
    claims = change(int(time.time()))
    response = client.get(f"{PREFIX}/_probe", headers=es_headers(es_key, es_tenant, **claims))
    assert_error(response, 401, "UNAUTHORIZED")


# -- 404 TENANT_NOT_FOUND ------------------------------------------------------------------------
def test_unknown_tenant_is_404(client, headers):
    tenant = str(uuid.uuid4())
    assert_error(client.get(f"{PREFIX}/_probe", headers=headers(tenant=tenant)),
                 404, "TENANT_NOT_FOUND")


def test_tenant_of_another_realm_is_404(client, headers, es_tenant):
    response = client.get(f"{PREFIX}/_probe", headers=headers(tenant=es_tenant))
    assert_error(response, 404, "TENANT_NOT_FOUND")


def test_unknown_tenant_is_not_remembered(client, headers, db):
    tenant = str(uuid.uuid4())
    call = headers(tenant=tenant)
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 404, "TENANT_NOT_FOUND")
    create_tenant(db, tenant, "Late tenant", REALM)
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200


def test_known_tenant_is_remembered_for_thirty_seconds(app, client, headers, tenant_id, db):
    call = headers()
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200
    with db.write() as session:
        session.delete(session.get(Tenant, tenant_id))
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200
    guard = app.extensions["tally_guard"]
    later = guard.clock() + 31
    guard.clock = lambda: later
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 404, "TENANT_NOT_FOUND")


def test_headers_that_passed_are_verified_again_once_their_token_expires(
        app, client, make_token, headers, tenant_id, monkeypatch):
    """The guard remembers headers that passed, but never past the token's own expiry: then the
    token goes through the verifier again (which refuses an expired one: test_expired_token)."""
    guard = app.extensions["tally_guard"]
    verified = []
    real_verify = guard.verifier.verify
    monkeypatch.setattr(guard.verifier, "verify",
                        lambda realm, token: verified.append(token) or real_verify(realm, token))
    call = headers()
    call["Authorization"] = f"Bearer {make_token(tenant_id, ttl=600)}"
    for _ in range(3):
        assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200
    assert len(verified) == 1
    later = time.time() + 601
    monkeypatch.setattr(guard.verifier, "_clock", lambda: later)
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200  # PyJWT's own clock
    assert len(verified) == 2


def test_headers_that_passed_are_checked_again_when_the_tenant_is_looked_up_again(
        app, client, headers, other_tenant, db, make_token):
    """A tenant deprovisioned meanwhile is a 404 once its remembered realm lapses, even for
    headers that passed; a change of any header is a new check."""
    call = headers(tenant=other_tenant)
    assert client.get(f"{PREFIX}/_probe", headers=call).get_json()["tenant"] == other_tenant
    with db.write() as session:
        session.delete(session.get(Tenant, other_tenant))
    assert client.get(f"{PREFIX}/_probe", headers=call).status_code == 200
    shouted = dict(call, **{"x-tenantid": other_tenant.upper()})
    assert client.get(f"{PREFIX}/_probe", headers=shouted).status_code == 200  # remembered realm
    guard = app.extensions["tally_guard"]
    later = guard.clock() + 31
    guard.clock = lambda: later
    for each in (call, shouted):
        assert_error(client.get(f"{PREFIX}/_probe", headers=each), 404, "TENANT_NOT_FOUND")


def test_remembered_headers_are_bounded(app, client, headers, monkeypatch):
    monkeypatch.setattr(app.extensions["tally"].caches.passed, "size", 3)
    for n in range(7):
        assert client.get(f"{PREFIX}/_probe", headers=headers(user=f"user-{n}")).status_code == 200
    assert len(app.extensions["tally"].caches.passed) == 3


# -- 403 FORBIDDEN -------------------------------------------------------------------------------
def test_token_for_tenant_a_on_tenant_b_is_403(client, headers, make_token, tenant_id,
                                               other_tenant):
    call = headers(tenant=other_tenant)
    call["Authorization"] = f"Bearer {make_token(tenant_id)}"
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 403, "FORBIDDEN")


def test_service_token_is_trusted_for_every_tenant_of_its_realm(
        client, headers, make_token, tenant_id, other_tenant):
    call = headers(tenant=other_tenant)
    call["Authorization"] = f"Bearer {make_token(tenant_id, 'svc', ['ticket_service'])}"
    response = client.get(f"{PREFIX}/_service", headers=call)
    assert response.status_code == 200
    assert response.get_json()["tenant"] == other_tenant


def test_service_token_is_not_trusted_for_a_tenant_of_another_realm(
        client, headers, make_token, tenant_id, es_tenant):
    call = headers(tenant=es_tenant)
    call["Authorization"] = f"Bearer {make_token(tenant_id, 'svc', ['ticket_service'])}"
    assert_error(client.get(f"{PREFIX}/_service", headers=call), 404, "TENANT_NOT_FOUND")


def test_missing_role_for_the_call_is_403(client, headers):
    response = client.get(f"{PREFIX}/_service", headers=headers(roles=["ticket_admin"]))
    assert_error(response, 403, "FORBIDDEN")


@pytest.mark.parametrize("roles", [[], ["offline_access", "uma_authorization"]])
def test_token_without_any_ticket_role_is_403_for_every_call(client, headers, roles):
    assert_error(client.get(f"{PREFIX}/_open", headers=headers(roles=roles)), 403, "FORBIDDEN")


def test_role_check_comes_before_argument_validation(client, headers):
    url = f"{PREFIX}/_smorest"
    assert_error(client.get(f"{url}?n=x", headers=headers(roles=["ticket_user"])), 403, "FORBIDDEN")
    admin = headers(roles=["ticket_admin"])
    assert_error(client.get(f"{url}?n=x", headers=admin), 400, "VALIDATION_ERROR")
    assert client.get(f"{url}?n=3", headers=admin).get_json() == {"n": 3}


def test_require_roles_keeps_the_openapi_documentation(client):
    operation = client.get("/openapi.json").get_json()["paths"][f"{PREFIX}/_smorest"]["get"]
    assert [parameter["name"] for parameter in operation["parameters"]] == [
        "n", "x-tenantid", "realmname"]  # the query's, then the guard's (tally.http.openapi)


# -- order: the first failing check wins ---------------------------------------------------------
def test_bad_header_and_bad_token_is_400(client, headers):
    call = headers()
    call.update({"x-tenantid": "nope", "Authorization": "Bearer garbage"})
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 400, "INVALID_HEADER")


def test_refused_accept_and_bad_header_is_406(client, headers):
    call = headers()
    call.update({"x-tenantid": "nope", "accept": "text/html"})
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 406, "NOT_ACCEPTABLE")


def test_unknown_realm_and_bad_token_is_404_realm(client, headers):
    call = headers()
    call.update({"realmname": "no-such-realm", "Authorization": "Bearer garbage"})
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 404, "REALM_NOT_FOUND")


def test_bad_token_and_unknown_tenant_is_401(client, headers):
    call = headers(tenant=str(uuid.uuid4()))
    call["Authorization"] = "Bearer garbage"
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 401, "UNAUTHORIZED")


def test_unknown_tenant_and_wrong_tenant_claim_is_404(client, headers, make_token, tenant_id):
    call = headers(tenant=str(uuid.uuid4()))
    call["Authorization"] = f"Bearer {make_token(tenant_id)}"
    assert_error(client.get(f"{PREFIX}/_probe", headers=call), 404, "TENANT_NOT_FOUND")


def test_guard_runs_before_routing(client):
    assert_error(client.get(f"{PREFIX}/no/such/route"), 400, "INVALID_HEADER")


# -- envelope ------------------------------------------------------------------------------------
def test_error_envelope_shape(client, headers):
    call = headers()
    del call["Authorization"]
    body = assert_error(client.get(f"{PREFIX}/_probe", headers=call), 401, "UNAUTHORIZED")
    assert set(body) == {"success", "error", "timestamp"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert TIMESTAMP.match(body["timestamp"])


def test_unexpected_error_is_500_without_a_stack_trace(client, headers):
    response = client.get(f"{PREFIX}/_boom", headers=headers())
    body = assert_error(response, 500, "INTERNAL_ERROR")
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "RuntimeError", "secret internal detail", ".py"):
        assert leak not in text
    assert body["error"]["details"] is None
    assert TIMESTAMP.match(body["timestamp"])
