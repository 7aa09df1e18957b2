"""The setup commands of the `tally` CLI: schema, tenants, development tokens, the demo."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import inspect, select

from tally.settings import Test
from tally.app import create_app
from tally.dev.demo import DEMO_TENANT
from tally.stores.sql.models import Filter, Tenant
from tests.support.processes import ROOT


def run(app, *args):
    return app.test_cli_runner().invoke(args=["tally", *args])


def test_db_upgrade_creates_every_table_on_an_empty_database(tmp_path, redis_url, realms_file):
    app = create_app(Test(), DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}",
                     REDIS_URL=redis_url, REALMS_FILE=realms_file)
    result = run(app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    tables = set(inspect(app.extensions["tally"].db.engine).get_table_names())
    assert {"tenants", "tickets", "notifications", "filters", "outbox", "seen_events"} <= tables


def test_tenant_create_provisions_system_filters_once(app, services):
    tenant = str(uuid.uuid4())
    first = run(app, "tenant", "create", "--id", tenant, "--name", "Acme", "--realm", "tally-dev")
    again = run(app, "tenant", "create", "--id", tenant, "--name", "Acme", "--realm", "tally-dev")
    assert first.exit_code == 0 and "created" in first.output
    assert again.exit_code == 0 and "already exists" in again.output
    with services.db.snapshot() as session:
        assert session.get(Tenant, tenant).realm == "tally-dev"
        ids = set(session.scalars(select(Filter.id).where(Filter.tenant_id == tenant)))
    assert {"all", "3745", "4195", "7471", "7472", "7474"} <= ids


def test_tenant_create_rejects_a_malformed_uuid(app):
    result = run(app, "tenant", "create", "--id", "nope", "--name", "x", "--realm", "tally-dev")
    assert result.exit_code == 2
    assert "not a UUID" in result.output


def test_dev_token_is_accepted_by_the_api(app, client, tenant_id):
    result = run(app, "dev-token", "--tenant", tenant_id, "--user", "ann",
                 "--role", "ticket_agent", "--team", "blue")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    response = client.get("/api/v2/ticketing/ticket/notification/count?view=minimal",
                          headers={"Authorization": f"Bearer {token}", "x-tenantid": tenant_id,
                                   "realmname": "tally-dev"})
    assert response.status_code == 200
    assert response.get_json()["data"] == {"count": 0}


def test_dev_token_is_refused_in_production(make_app, tenant_id):
    app = make_app(ENV="production")
    result = run(app, "dev-token", "--tenant", tenant_id, "--user", "ann", "--role", "ticket_user")
    assert result.exit_code != 0
    assert "disabled" in result.output


def test_demo_provisions_the_demo_tenant_with_progress(app, services):
    result = run(app, "demo")
    assert result.exit_code == 0, result.output
    assert "demo data:" in result.output and "events" in result.output
    with services.db.snapshot() as session:
        filters = set(session.scalars(select(Filter.id).where(Filter.tenant_id == DEMO_TENANT)))
    assert {"4373", "7693", "a7069dca-b9b1-4bf5-9a41-20dd75bf6f62"} <= filters


def test_the_console_script_shares_the_group():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    done = subprocess.run([str(Path(sys.executable).parent / "tally"), "--help"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("db", "tenant", "cache", "dev-token", "demo"):
        assert command in done.stdout
