"""Fixtures: one real redis-server per run, a migrated database per test, apps, tokens."""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import uuid

import pytest
import redis

from tally.settings import Test
from tally.observability import logs
from tally.app import create_app
from tally.dev import keys as devkeys
from tally.dev.launcher import RedisProcess
from tally.services.tenants import create_tenant
from tally.stores.sql.db import Database
from tests.support import tickets
from tests.support.counter_store import CounterStore
from tests.support.postgres import PostgresCluster, create_database, drop_database
from tests.support.tokens import REALM


@pytest.fixture(scope="session")
def redis_proc():
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("var"))
    devkeys.ensure_dev_realm(path)
    return path


@pytest.fixture(scope="session")
def realms_file(var_dir) -> str:
    return devkeys.ensure_dev_realm(var_dir)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("db") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.engine.dispose()
    return str(path)


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL server URL and a migrated template database, or a skip (a failure in CI)."""
    url = os.environ.get("TALLY_TEST_POSTGRES_URL")
    cluster = None
    if not url:
        if not PostgresCluster.available():
            if os.environ.get("CI"):
                pytest.fail("CI must run the PostgreSQL tests, but no postgres binary was found")
            pytest.skip("no postgres binary and no TALLY_TEST_POSTGRES_URL")
        cluster = PostgresCluster().start()
        url = cluster.url
    template_url = create_database(url)
    db = Database(template_url)
    db.upgrade()
    db.engine.dispose()
    yield url, template_url.rsplit("/", 1)[1]
    if cluster:
        cluster.stop()


def pytest_generate_tests(metafunc):
    """A test marked `both_databases` runs on SQLite and on PostgreSQL; any other runs once."""
    if ("db_url" in metafunc.fixturenames
            and metafunc.definition.get_closest_marker("both_databases")):
        metafunc.parametrize(
            "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
            indirect=True)


@pytest.fixture
def db_url(request, tmp_path, sqlite_template) -> str:
    """A migrated, empty database for one test: SQLite, and PostgreSQL too where the test is
    marked `both_databases` (SQL behaviour: stores, services, ingest, maintenance, invariants)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        path = tmp_path / "tally.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    server_url, template = request.getfixturevalue("postgres_server")
    url = create_database(server_url, template)
    request.addfinalizer(lambda: drop_database(url))
    return url


@pytest.fixture
def redis_url(redis_proc) -> str:
    client = redis.Redis.from_url(redis_proc.url)
    client.flushall()
    client.close()
    return redis_proc.url


@pytest.fixture
def counter_store(redis_url) -> CounterStore:
    """The counter Redis of tests that run on both kinds (here the standalone server, which RQ
    shares); tests/cluster/conftest.py swaps in a Redis Cluster."""
    return CounterStore(url=redis_url, queue_url=redis_url)


@pytest.fixture
def make_app(db_url, redis_url, realms_file, var_dir):
    apps = []

    def build(**overrides):
        settings = dict(DATABASE_URL=db_url, REDIS_URL=redis_url, REALMS_FILE=realms_file,
                        VAR_DIR=var_dir)
        settings.update(overrides)
        app = create_app(Test(), **settings)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["tally"].db.engine.dispose()


@pytest.fixture
def raw(redis_url):
    """A plain client of the test redis-server, strings in and out."""
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def services(app):
    return app.extensions["tally"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tenant_id(app) -> str:
    tenant = str(uuid.uuid4())
    create_tenant(app.extensions["tally"].db, tenant, "Test tenant", REALM)
    return tenant


@pytest.fixture
def ticket_world(app, client, headers, tenant_id):
    """Builds the tenant's ticket world (tests/support/tickets.py `world`):
    `ticket_world(now=, n=, seed=)` -> (services, tickets)."""
    return functools.partial(tickets.world, app, client, headers, tenant_id)


@pytest.fixture
def make_token(var_dir):
    def build(tenant: str, user: str = "user-1", roles=("ticket_user",), teams=(), ttl=3600):
        return devkeys.dev_token(var_dir, tenant=tenant, user=user, roles=list(roles),
                                 teams=list(teams), ttl=ttl)

    return build


@pytest.fixture
def headers(make_token, tenant_id):
    """Headers for an API call as `user` with `roles` in the test tenant."""

    def build(user: str = "user-1", roles=("ticket_user",), teams=(), tenant: str | None = None):
        tenant = tenant or tenant_id
        return {"Authorization": f"Bearer {make_token(tenant, user, roles, teams)}",
                "x-tenantid": tenant, "realmname": REALM, "accept": "application/json"}

    return build


@pytest.fixture
def json_lines(capsys):
    """The JSON log lines written to stderr while the test runs (the root logger and the access
    log at INFO meanwhile: an app built in the test sets the root back to TALLY_ENV=test's
    WARNING, and the access log's own level keeps its lines coming)."""
    loggers = [logging.getLogger(), logs.log]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)

    def read() -> list[dict]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    yield read
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)
