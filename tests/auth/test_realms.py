"""The realms file and JWKS lookup: parsing, fetching, caching, rotation."""
from __future__ import annotations

import json

import pytest

from tally.errors import ConfigError, KeyLookupError
from tally.settings import Test
from tally.app import create_app
from tally.auth.realms import Realm, Realms
from tests.support.tokens import ec_key, jwks, rsa_key, write_jwks
from tests.support.jwks_server import FakeClock, JwksServer


@pytest.fixture(scope="module")
def rsa():
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec():
    return ec_key("ec-1")


class CountingFetch:
    """A JWKS endpoint in memory: serves `document`, counts downloads, fails when told."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.calls = 0
        self.fail = False

    def __call__(self, url: str) -> bytes:
        self.calls += 1
        if self.fail:
            raise OSError("connection refused")
        return json.dumps(self.document).encode()


URI_REALM = Realm(name="remote", issuer="https://idp.invalid/remote",
                  jwks_uri="https://idp.invalid/remote/certs")


def remote(fetch: CountingFetch, clock: FakeClock) -> Realms:
    return Realms({"remote": URI_REALM}, fetch=fetch, clock=clock)


def test_empty_path_means_no_realms():
    realms = Realms.load("")
    assert realms.get("tally-dev") is None
    assert realms.names() == []


def test_realms_file_is_parsed_with_relative_jwks_file(tmp_path, rsa):
    write_jwks(tmp_path / "keys.json", rsa)
    path = tmp_path / "realms.json"
    path.write_text(json.dumps({
        "acme": {"issuer": "https://idp.invalid/acme", "audience": "tally",
                 "jwks_file": "keys.json"},
        "beta.eu-1": {"issuer": "https://idp.invalid/beta", "jwks_uri": "https://idp.invalid/k"},
    }))
    realms = Realms.load(str(path))
    assert realms.get("acme") == Realm("acme", "https://idp.invalid/acme", "tally", None,
                                       str(tmp_path / "keys.json"))
    assert realms.get("beta.eu-1").jwks_uri == "https://idp.invalid/k"
    assert realms.get("beta.eu-1").audience is None
    assert realms.get("gamma") is None
    assert realms.signing_key(realms.get("acme"), "rsa-1").key_id == "rsa-1"


@pytest.mark.parametrize("content, reason", [
    ("not json", "Expecting value"),
    ("[]", "JSON object of realms"),
    ('{"bad realm!": {"issuer": "x", "jwks_uri": "https://k"}}', "realm name"),
    ('{"a": "x"}', "must be a JSON object"),
    ('{"a": {"jwks_uri": "https://k"}}', "issuer"),
    ('{"a": {"issuer": "x"}}', "exactly one of jwks_uri and jwks_file"),
    ('{"a": {"issuer": "x", "jwks_uri": "https://k", "jwks_file": "k.json"}}', "exactly one"),
    ('{"a": {"issuer": "x", "jwks_uri": "file:///etc/passwd"}}', "http(s) URL"),
    ('{"a": {"issuer": "x", "audience": 3, "jwks_uri": "https://k"}}', "audience"),
    ('{"a": {"issuer": "x", "jwks_uri": "https://k", "algs": ["HS256"]}}', "unknown settings"),
    ('{"a": {"issuer": "x", "jwks_file": "missing.json"}}', "cannot read the keys"),
])
def test_unusable_realms_file_raises_config_error_naming_the_variable(tmp_path, content, reason):
    path = tmp_path / "realms.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as raised:
        Realms.load(str(path))
    assert "TALLY_REALMS_FILE" in str(raised.value)
    assert reason in str(raised.value)


def test_missing_realms_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="TALLY_REALMS_FILE"):
        Realms.load(str(tmp_path / "nope.json"))


def test_create_app_refuses_a_bad_realms_file(tmp_path):
    path = tmp_path / "realms.json"
    path.write_text("{")
    with pytest.raises(ConfigError, match="TALLY_REALMS_FILE"):
        create_app(Test(), REALMS_FILE=str(path))


def test_jwks_uri_is_fetched_once_and_cached_for_five_minutes(rsa):
    fetch, clock = CountingFetch(jwks(rsa)), FakeClock()
    realms = remote(fetch, clock)
    assert realms.signing_key(URI_REALM, "rsa-1").key_id == "rsa-1"
    clock.now += 299
    realms.signing_key(URI_REALM, "rsa-1")
    assert fetch.calls == 1
    clock.now += 2
    realms.signing_key(URI_REALM, "rsa-1")
    assert fetch.calls == 2


def test_unknown_kid_refetches_once_per_thirty_seconds(rsa, ec):
    fetch, clock = CountingFetch(jwks(rsa)), FakeClock()
    realms = remote(fetch, clock)
    realms.signing_key(URI_REALM, "rsa-1")
    with pytest.raises(KeyLookupError):
        realms.signing_key(URI_REALM, "rotated")
    assert fetch.calls == 2
    clock.now += 29
    with pytest.raises(KeyLookupError):
        realms.signing_key(URI_REALM, "other")
    assert fetch.calls == 2
    clock.now += 1
    fetch.document = jwks(rsa, ec)  # the issuer has rotated in a new key
    assert realms.signing_key(URI_REALM, "ec-1").algorithm_name == "ES256"
    assert fetch.calls == 3


def test_no_kid_uses_the_only_key_and_refuses_to_guess_among_several(rsa, ec):
    clock = FakeClock()
    assert remote(CountingFetch(jwks(rsa)), clock).signing_key(URI_REALM, None).key_id == "rsa-1"
    with pytest.raises(KeyLookupError):
        remote(CountingFetch(jwks(rsa, ec)), clock).signing_key(URI_REALM, None)


def test_unreachable_jwks_without_cached_keys_raises_key_lookup_error():
    fetch = CountingFetch({})
    fetch.fail = True
    with pytest.raises(KeyLookupError, match="connection refused"):
        remote(fetch, FakeClock()).signing_key(URI_REALM, "rsa-1")


def test_unreachable_jwks_keeps_the_previous_keys(rsa):
    fetch, clock = CountingFetch(jwks(rsa)), FakeClock()
    realms = remote(fetch, clock)
    realms.signing_key(URI_REALM, "rsa-1")
    fetch.fail = True
    clock.now += 400
    assert realms.signing_key(URI_REALM, "rsa-1").key_id == "rsa-1"
    assert fetch.calls == 2


def test_jwks_without_usable_keys_raises_key_lookup_error():
    fetch = CountingFetch({"keys": [{"kty": "nope"}]})
    with pytest.raises(KeyLookupError):
        remote(fetch, FakeClock()).signing_key(URI_REALM, None)


def test_jwks_uri_is_downloaded_over_http(rsa):
    # Given a real HTTP server publishing the JWKS
    with JwksServer(jwks(rsa)) as server:
        realm = Realm("web", "https://idp.invalid/web", jwks_uri=server.url)
        realms = Realms({"web": realm})
        # When a key is looked up twice
        first = realms.signing_key(realm, "rsa-1")
        second = realms.signing_key(realm, "rsa-1")
    # Then the document was downloaded once
    assert first.key_id == second.key_id == "rsa-1"
    assert server.hits == 1
