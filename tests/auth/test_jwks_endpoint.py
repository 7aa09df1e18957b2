"""A realm whose keys come from a real JWKS endpoint, through the API: a rotated key is refetched
once and then rate-limited; a slow endpoint times out into 401; a download in flight holds up no
request that already has its key."""
from __future__ import annotations

import functools
import json
import threading
import uuid
from pathlib import Path

import pytest

from tally.auth.realms import MISSING_RETRY_INTERVAL, REFETCH_INTERVAL, Realms, fetch_url
from tally.auth.tokens import TokenVerifier
from tally.services.container import build_caches
from tally.services.tenants import create_tenant
from tests.support.tokens import claims, jwks, rsa_key
from tests.support.jwks_server import HOLD_SECONDS, FakeClock, JwksServer

REALM = "remote"
ISSUER = "https://idp.invalid/realms/remote"
PROBE = "/api/v2/ticketing/ticket/notification/count?view=minimal"


# These tests are about keys, not about the database: SQLite only.


@pytest.fixture(scope="module")
def old_key():
    return rsa_key("key-2025")


@pytest.fixture(scope="module")
def new_key():
    return rsa_key("key-2026")


@pytest.fixture
def server(old_key):
    with JwksServer(jwks(old_key)) as running:
        yield running


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_remote(make_app, tmp_path, server, clock):
    """Build (app, tenant) for a realm served by `server`, downloads timing out after
    `timeout` seconds; the realm's intervals run on `clock`."""

    def build(timeout: float = 0.3):
        path = Path(tmp_path) / "realms.json"
        path.write_text(json.dumps({REALM: {"issuer": ISSUER, "jwks_uri": server.url}}))
        app = make_app(REALMS_FILE=str(path))
        realms = Realms({REALM: Realms.load(str(path)).get(REALM)},
                        fetch=functools.partial(fetch_url, timeout=timeout), clock=clock)
        app.extensions["tally"].realms = realms
        app.extensions["tally_guard"].verifier = TokenVerifier(realms, build_caches({}).tokens)
        tenant = str(uuid.uuid4())
        create_tenant(app.extensions["tally"].db, tenant, "Remote tenant", REALM)
        return app, tenant

    return build


def call(app, tenant: str, key) -> int:
    token = key.sign(claims(ISSUER, None, tenant_id=tenant, jti=str(uuid.uuid4())))
    response = app.test_client().get(PROBE, headers={
        "Authorization": f"Bearer {token}", "x-tenantid": tenant, "realmname": REALM})
    if response.status_code != 200:
        assert response.get_json()["error"]["code"] == "UNAUTHORIZED", response.get_json()
    return response.status_code


def test_a_rotated_key_is_refetched_once_then_rate_limited(make_remote, server, clock,
                                                           old_key, new_key):
    app, tenant = make_remote()
    assert call(app, tenant, old_key) == 200
    assert server.hits == 1
    # The issuer signs with a key it has not published yet: one refetch, still unknown → 401.
    assert call(app, tenant, new_key) == 401
    assert server.hits == 2
    # Published now, but within the refetch interval: no download (a flood of unknown kids
    # cannot hammer the issuer), so 401 until the interval has passed.
    server.document = jwks(old_key, new_key)
    assert call(app, tenant, new_key) == 401
    assert call(app, tenant, rsa_key("forged-kid")) == 401
    assert server.hits == 2
    clock.now += REFETCH_INTERVAL
    assert call(app, tenant, new_key) == 200
    assert call(app, tenant, old_key) == 200
    assert server.hits == 3


def test_a_slow_jwks_endpoint_times_out_into_401(make_remote, server, clock, old_key):
    app, tenant = make_remote()
    server.slow = True
    assert call(app, tenant, old_key) == 401  # the download timed out; the call did not hang
    assert server.hits == 1
    assert call(app, tenant, old_key) == 401  # no keys and a failed download: 401 at once
    assert server.hits == 1
    clock.now += MISSING_RETRY_INTERVAL
    server.slow = False
    assert call(app, tenant, old_key) == 200
    assert server.hits == 2


def test_a_download_in_flight_holds_up_no_caller_that_has_its_key(make_remote, server,
                                                                  old_key, new_key):
    app, tenant = make_remote(timeout=HOLD_SECONDS + 5)  # held until the test releases it
    assert call(app, tenant, old_key) == 200
    # Given a refetch for a rotated key, stuck at a slow issuer
    server.document, server.slow = jwks(old_key, new_key), True
    rotated: list[int] = []
    stuck = threading.Thread(target=lambda: rotated.append(call(app, tenant, new_key)))
    stuck.start()
    try:
        assert server.arrived.wait(HOLD_SECONDS)
        # When a caller whose key is held asks meanwhile, it is answered while the download
        # is still held by the issuer
        assert call(app, tenant, old_key) == 200
        assert stuck.is_alive() and not server.release.is_set()
    finally:
        server.release.set()
        stuck.join()
    # Then the rotated key was found by that one download
    assert server.hits == 2
    assert rotated == [200]
    assert call(app, tenant, new_key) == 200
    assert server.hits == 2
