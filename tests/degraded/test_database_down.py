"""The database down (a private PostgreSQL, stopped mid-test): warm reads still answer from Redis,
ingestion and cold reads are a 503 in the envelope, /readyz is a 503; nothing is half-written."""
from __future__ import annotations

import logging
import os
import subprocess
import time
import uuid
from unittest.mock import ANY

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from tally.settings import Test
from tally.app import create_app
from tally.services import ingest
from tally.dev.launcher import wait_for_port
from tally.services.tenants import create_tenant
from tally.stores.sql.db import Database
from tests.support.tokens import REALM
from tests.support import degraded as h
from tests.support import events as b
from tests.support.events import NOTHING, written
from tests.support.postgres import PostgresCluster, _as_postgres, create_database

pytestmark = pytest.mark.slow
LEAKS = ("Traceback", "psycopg", "sqlalchemy", "SELECT", "INSERT", "127.0.0.1")


class PausablePostgres(PostgresCluster):
    """A throwaway cluster that can be stopped and started again with its data."""

    def _options(self) -> str:  # as PostgresCluster.start
        return (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")

    def pause(self) -> None:
        subprocess.run(_as_postgres(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"]),
                       check=True, stdout=subprocess.DEVNULL)

    def resume(self) -> None:
        subprocess.run(_as_postgres(["pg_ctl", "-D", self.data, "-l", self.log, "-o",
                                     self._options(), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)


@pytest.fixture(scope="module")
def cluster():
    if not PostgresCluster.available():
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests, but no postgres binary was found")
        pytest.skip("no postgres binary: the database-down tests need a private cluster")
    server = PausablePostgres().start()
    yield server
    server.stop()


@pytest.fixture
def world(cluster, redis_url, realms_file, var_dir, make_token):
    """An app on a fresh database of the private cluster, with a tenant and its callers' headers,
    and a clock that can be moved past the guard's and the filter catalog's caches."""
    url = create_database(cluster.url)
    Database(url).upgrade()
    app = create_app(Test(), DATABASE_URL=url, REDIS_URL=redis_url, REALMS_FILE=realms_file,
                     VAR_DIR=var_dir)
    svc = app.extensions["tally"]
    tenant = str(uuid.uuid4())
    create_tenant(svc.db, tenant, "Degraded", REALM)

    def auth(user: str, roles: tuple[str, ...], of: str = tenant) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(of, user, roles)}", "x-tenantid": of,
                "realmname": REALM, "accept": "application/json"}

    skew = [0.0]

    def clock() -> float:
        return time.monotonic() + skew[0]

    app.extensions["tally_guard"].clock = clock
    svc.filter_catalog.monotonic = clock
    tokens = {"ann": auth("ann", h.USER), "admin": auth("boss", h.ADMIN),
              "service": auth("svc", h.SERVICE), "auth": auth}
    yield app, tenant, tokens, skew
    if not _running(cluster):
        cluster.resume()
    svc.db.engine.dispose()


def _running(cluster: PausablePostgres) -> bool:
    return os.path.exists(os.path.join(cluster.data, "postmaster.pid"))


def _warm(app, tokens) -> None:
    """Ingest the first history and have a worker apply it onto warm counters."""
    client = app.test_client()
    h.assert_answers(client, tokens, h.EMPTY, "recomputed")
    assert client.post(h.EVENTS, json={"events": h.first_events()},
                       headers=tokens["service"]).status_code == 202
    assert h.drain(app, app.extensions["tally"].config.REDIS_URL)
    h.assert_answers(client, tokens, h.AFTER_FIRST, "cache")


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False and body["timestamp"].endswith("Z")
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    text = response.get_data(as_text=True)
    assert not [leak for leak in LEAKS if leak in text]


def _warnings(caplog, logger: str) -> int:
    return sum(1 for r in caplog.records if r.name == logger and r.levelno == logging.WARNING
               and "database unavailable" in r.getMessage())


@pytest.mark.postgres
def test_warm_reads_survive_and_ingestion_is_a_503_until_it_returns(cluster, world, caplog):
    app, tenant, tokens, skew = world
    client = app.test_client()
    _warm(app, tokens)

    cluster.pause()
    for _ in range(3):  # each past both caches' lifetimes, so each request tries SQL again
        skew[0] += 3600
        h.assert_answers(client, tokens, h.AFTER_FIRST, "cache")
    assert _warnings(caplog, "tally.auth.guard") == 1  # once per outage, not per request
    assert _warnings(caplog, "tally.services.catalog") == 1
    _assert_unavailable(client.post(h.EVENTS, json={"events": h.second_events()},
                                    headers=tokens["service"]))
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"database": "unavailable", "redis": "ok"}

    cluster.resume()
    again = client.post(h.EVENTS, json={"events": h.second_events()}, headers=tokens["service"])
    assert again.status_code == 202
    # none half-written
    assert again.get_json()["data"] == {"accepted": 7, "duplicates": 0, "watermark": ANY}
    assert client.get("/readyz").status_code == 200
    assert h.drain(app, app.extensions["tally"].config.REDIS_URL)
    h.assert_answers(client, tokens, h.AFTER_SECOND, "cache")
    h.assert_no_drift(app.extensions["tally"], tenant)


@pytest.mark.postgres
def test_cold_reads_are_a_503_and_leave_no_rebuild_behind(cluster, world):
    app, tenant, tokens, skew = world
    client = app.test_client()
    _warm(app, tokens)
    bob, user_view = tokens["auth"]("bob", h.USER), h.COUNT.replace("template", "user")
    stranger = tokens["auth"]("eve", h.USER, of=str(uuid.uuid4()))
    unseen_filter = {"filterIds": ["all", str(uuid.uuid4())]}

    cluster.pause()
    _assert_unavailable(client.get(h.NOTIFICATIONS, headers=bob))  # bob's counters are cold
    _assert_unavailable(client.post(user_view, json=h.ASK, headers=tokens["ann"]))
    _assert_unavailable(client.get(h.NOTIFICATIONS, headers=stranger))  # tenant never seen
    _assert_unavailable(client.post(h.COUNT, json=unseen_filter, headers=tokens["admin"]))
    h.assert_answers(client, tokens, h.AFTER_FIRST, "cache")  # the warm ones still answer

    cluster.resume()
    first = client.get(h.NOTIFICATIONS, headers=bob)
    assert first.headers["X-Count-Source"] == "recomputed"  # no marker left blocking install
    assert h.notification_numbers(first)[:2] == (1, 1)
    assert client.get(h.NOTIFICATIONS, headers=bob).headers["X-Count-Source"] == "cache"
    assert client.post(user_view, json=h.ASK, headers=tokens["ann"]).status_code == 200
    assert client.post(user_view, json=h.ASK,
                       headers=tokens["ann"]).headers["X-Count-Source"] == "cache"
    assert client.post(h.COUNT, json=unseen_filter,
                       headers=tokens["admin"]).status_code == 422  # now SQL can say so
    h.assert_no_drift(app.extensions["tally"], tenant)


def _failing_after_writes(error: Exception):
    """A ticket.deleted handler that fails once the events before it were written."""

    def handler(batch, data):
        assert batch.groups  # the earlier events of the batch are already in the transaction
        raise error

    return handler


@pytest.mark.parametrize("error, status, code", [
    (OperationalError("UPDATE tickets", {}, Exception("server closed the connection")),
     503, "SERVICE_UNAVAILABLE"),
    (IntegrityError("INSERT INTO tickets", {}, Exception("duplicate key")), 500,
     "INTERNAL_ERROR"),
])
def test_a_failure_mid_batch_writes_nothing(services, client, headers, tenant_id, monkeypatch,
                                            error, status, code):
    monkeypatch.setitem(ingest.HANDLERS, "ticket.deleted", _failing_after_writes(error))
    batch = h.first_events() + [b.ticket_deleted("t-1", 5)]
    response = client.post(h.EVENTS, json={"events": batch}, headers=headers(roles=h.SERVICE))
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert not [leak for leak in LEAKS if leak in response.get_data(as_text=True)]
    assert written(services, tenant_id) == NOTHING
