"""A big valid token (an agent in hundreds of UUID teams) crosses every layer in front of tally:
gunicorn's header-line limit included (issue 17 #6: 4 KB and more were refused)."""
from __future__ import annotations

import ast
import shutil
import uuid

import pytest
import requests

from tally.settings import Test
from tally.app import create_app
from tally.dev import keys as devkeys
from tally.auth.tokens import MAX_TOKEN_BYTES
from tally.services.tenants import create_tenant
from tests.support.tokens import REALM
from tests.support.web import ROOT, Gunicorn, app_env

pytestmark = pytest.mark.slow

BADGE = "/api/v2/ticketing/ticket/notification/count"
HEADER_LINE = len("Authorization: Bearer ") + len("\r\n")


def gunicorn_setting(name: str) -> int:
    """A literal setting of config/gunicorn.conf.py, read without running the file (it sets
    process-wide environment for prometheus-client)."""
    tree = ast.parse((ROOT / "config" / "gunicorn.conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not set in config/gunicorn.conf.py")


def test_gunicorn_passes_a_header_line_holding_the_largest_token():
    assert gunicorn_setting("limit_request_field_size") >= HEADER_LINE + MAX_TOKEN_BYTES


def agent_token(var_dir: str, tenant: str, teams: int) -> str:
    return devkeys.dev_token(var_dir, tenant=tenant, user="agent-1", roles=["ticket_agent"],
                             teams=[str(uuid.UUID(int=n)) for n in range(teams)], ttl=600)


@pytest.fixture(scope="module")
def web(tmp_path_factory, sqlite_template, realms_file, var_dir, redis_proc):
    """The `web` process as the Procfile runs it (one worker) on its own SQLite file."""
    base = tmp_path_factory.mktemp("big-tokens")
    shutil.copy(sqlite_template, base / "tally.db")
    db_url = f"sqlite:///{base / 'tally.db'}"
    app = create_app(Test(), DATABASE_URL=db_url, REDIS_URL=redis_proc.url,
                     REALMS_FILE=realms_file, VAR_DIR=var_dir)
    tenant = str(uuid.uuid4())
    create_tenant(app.extensions["tally"].db, tenant, "big tokens", REALM)
    server = Gunicorn(app_env(db_url, redis_proc.url, realms_file, var_dir,
                              WEB_CONCURRENCY="1"), base / "web.log").start()
    try:
        yield server, tenant
    finally:
        server.stop()
        app.extensions["tally"].db.engine.dispose()


def test_a_token_of_hundreds_of_uuid_teams_is_answered_through_gunicorn(web, var_dir):
    server, tenant = web
    token = agent_token(var_dir, tenant, 550)
    assert 8190 < len(token) <= MAX_TOKEN_BYTES  # past gunicorn's default, within tally's bound
    response = requests.get(server.url + BADGE, timeout=30, headers={
        "Authorization": f"Bearer {token}", "x-tenantid": tenant, "realmname": REALM})
    assert response.status_code == 200, response.text


def test_a_token_over_the_bound_is_tallys_401_naming_it_not_the_servers_refusal(web):
    server, tenant = web
    response = requests.get(server.url + BADGE, timeout=30, headers={
        "Authorization": "Bearer " + "a" * (MAX_TOKEN_BYTES + 1), "x-tenantid": tenant,
        "realmname": REALM})
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"]["details"] == {"maxBytes": MAX_TOKEN_BYTES}
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
