"""The CLI's failures (contract §6): one `Error: …` line, an exit code per kind, no traceback."""
from __future__ import annotations

import socket
import uuid

import pytest
from sqlalchemy import select

from tally import app as tally_app, cli
from tally.services.tenants import create_tenant
from tally.stores.sql.models import Tenant
from tests.support import factories
from tests.support.tokens import REALM
from tests.support.factories import MIX


def run(app, *args):
    return app.test_cli_runner().invoke(args=["tally", *args])


def one_error(result, exit_code: int, *words: str) -> str:
    """The single `Error: …` line of a failed command (and no traceback)."""
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", [("cache", "rebuild"), ("cache", "stats")])
def test_a_cache_command_on_an_unknown_tenant_fails_with_one_line(app, command):
    tenant = str(uuid.uuid4())
    one_error(run(app, *command, "--tenant", tenant), cli.BAD_INPUT, tenant, "does not exist")


def test_verify_of_an_unknown_tenant_could_not_check(app):
    tenant = str(uuid.uuid4())
    one_error(run(app, "cache", "verify", "--tenant", tenant), 2, "could not verify", tenant)


def test_tenant_create_on_an_existing_tenant_names_the_realm_it_is_really_in(app, services):
    tenant = str(uuid.uuid4())
    create_tenant(services.db, tenant, "Acme", "other-realm")
    error = one_error(run(app, "tenant", "create", "--id", tenant, "--name", "Acme", "--realm",
                          REALM), cli.BAD_INPUT)
    assert "'other-realm'" in error and f"not '{REALM}'" in error
    again = run(app, "tenant", "create", "--id", tenant, "--name", "Acme", "--realm", REALM)
    assert again.exit_code == cli.BAD_INPUT  # still: it is not re-provisioned elsewhere
    with services.db.snapshot() as session:
        assert session.get(Tenant, tenant).realm == "other-realm"


@pytest.mark.parametrize("name, realm, words", [
    ("   ", REALM, ("--name", "blank")),
    ("", REALM, ("--name", "blank")),
    ("Acme", "no-such-realm", ("no-such-realm", "TALLY_REALMS_FILE")),
])
def test_tenant_create_refuses_a_blank_name_and_a_realm_the_api_cannot_reach(
        app, services, name, realm, words):
    tenant = str(uuid.uuid4())
    one_error(run(app, "tenant", "create", "--id", tenant, "--name", name, "--realm", realm),
              cli.BAD_INPUT, *words)
    with services.db.snapshot() as session:
        assert session.scalars(select(Tenant).where(Tenant.id == tenant)).first() is None


@pytest.mark.parametrize("spelling", ["{%s}", "urn:uuid:%s", " %s"])
def test_a_tenant_is_named_by_its_canonical_uuid_as_in_the_api(app, spelling):
    tenant = str(uuid.uuid4())
    one_error(run(app, "tenant", "create", "--id", spelling % tenant, "--name", "Acme",
                  "--realm", REALM), cli.BAD_INPUT, "not a UUID")


@pytest.mark.parametrize("args", [
    ("cache", "invalidate", "--tenant", "{tenant}", "--user", "a b"),
    ("cache", "invalidate", "--tenant", "{tenant}", "--user", "{x}"),
    ("cache", "invalidate", "--tenant", "{tenant}", "--filter", "no such id"),
    ("dev-token", "--tenant", "{tenant}", "--user", "a*b", "--role", "ticket_user"),
    ("dev-token", "--tenant", "{tenant}", "--user", "ann", "--role", "ticket_user",
     "--team", "t 1"),
])
def test_a_bad_user_team_or_filter_id_is_one_error_line(app, tenant_id, args):
    result = run(app, *(arg.replace("{tenant}", tenant_id) for arg in args))
    one_error(result, cli.BAD_INPUT, "is not")


@pytest.fixture
def redis_down(make_app, services, tenant_id):
    """An app whose counter Redis is not there, over a tenant with counters to rebuild."""
    factories.notifications(services.db, tenant_id, "u1", MIX)
    return make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")


def test_redis_unreachable_is_one_error_line_and_its_own_exit_code(redis_down, tenant_id):
    one_error(run(redis_down, "cache", "rebuild", "--tenant", tenant_id), cli.STORE_DOWN,
              "Redis is unreachable")
    one_error(run(redis_down, "cache", "invalidate", "--tenant", tenant_id), cli.STORE_DOWN,
              "Redis is unreachable")


def test_verify_with_redis_unreachable_could_not_check(redis_down, tenant_id):
    one_error(run(redis_down, "cache", "verify", "--tenant", tenant_id), 2,
              "could not verify", "Redis is unreachable")


def test_the_database_unreachable_is_one_error_line_and_its_own_exit_code(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/no/such/dir/tally.db")
    tenant = str(uuid.uuid4())
    one_error(run(app, "cache", "rebuild", "--tenant", tenant), cli.STORE_DOWN,
              "database is unreachable")
    one_error(run(app, "cache", "verify", "--tenant", tenant), 2, "could not verify")
    one_error(run(app, "tenant", "create", "--id", tenant, "--name", "x", "--realm", REALM),
              cli.STORE_DOWN, "database is unreachable")


def test_a_bad_tally_env_is_one_error_line_and_the_configuration_exit_code(monkeypatch, capsys):
    monkeypatch.setenv("TALLY_ENV", "staging")
    monkeypatch.setattr("sys.argv", ["tally", "cache", "stats"])
    with pytest.raises(SystemExit) as exited:
        tally_app.main()
    assert exited.value.code == cli.BAD_CONFIG
    err = capsys.readouterr().err
    assert err.splitlines() == ["Error: TALLY_ENV must be one of development, test, production, "
                                "not 'staging'"]


def test_drift_found_and_could_not_check_have_different_exit_codes():
    assert len({0, cli.DRIFT, cli.BAD_INPUT, cli.BAD_CONFIG, cli.STORE_DOWN}) == 5
    assert cli.DRIFT == 1 and cli.BAD_INPUT == 2  # contract §6: verify's 1 and 2


def test_version(app):
    from importlib.metadata import version

    result = run(app, "--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"tally, version {version('tally')}"
