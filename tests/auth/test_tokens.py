"""Token verification: algorithms, claims, key rotation, size cap and the verified-token cache."""
from __future__ import annotations

import json
import logging
import random
import time
import uuid

import pytest
from jwt import PyJWK

from tally.auth.realms import Realm, Realms
from tally.auth.tokens import MAX_TOKEN_BYTES, TokenVerifier
from tally.core.model import canonical_uuid
from tally.errors import KeyLookupError, Unauthorized
from tally.services.container import build_caches
from tests.support.tokens import (claims, ec_key, hs256_with_public_key, jwks, rsa_key,
                                  unsigned_token)

ISSUER = "https://idp.invalid/realms/acme"
REALM = Realm(name="acme", issuer=ISSUER, audience="tally", jwks_uri="https://idp.invalid/certs")
TENANT = str(uuid.uuid4())


@pytest.fixture(scope="module")
def rsa():
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec():
    return ec_key("ec-1")


class CountingKeys:
    """A key source over fixed keys that counts lookups."""

    def __init__(self, *keys) -> None:
        self.keys = {key.kid: PyJWK(key.jwk) for key in keys}
        self.lookups = 0

    def signing_key(self, realm: Realm, kid: str | None) -> PyJWK:
        self.lookups += 1
        if kid not in self.keys:
            raise KeyLookupError(f"no key {kid}")
        return self.keys[kid]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(rsa, ec):
    return CountingKeys(rsa, ec)


@pytest.fixture
def verifier(keys):
    return TokenVerifier(keys, build_caches({}).tokens)


def body(**extra):
    return claims(ISSUER, "tally", **{"tenant_id": TENANT, **extra})


def test_es256_token_is_accepted(verifier, ec):
    token = ec.sign(body(sub="agent-7", teams=["team-a", "team-b"],
                         realm_access={"roles": ["ticket_agent", "offline_access"]}))
    verified = verifier.verify(REALM, token)
    principal = verified.principal(TENANT)
    assert (principal.user_id, principal.tenant_id, principal.realm) == ("agent-7", TENANT, "acme")
    assert principal.roles == frozenset({"ticket_agent"})
    assert principal.teams == ("team-a", "team-b")
    assert verified.holds_tenant(TENANT)


def test_rs256_token_is_accepted(verifier, rsa):
    assert verifier.verify(REALM, rsa.sign(body())).user_id == "user-1"


@pytest.mark.parametrize("forge", [
    pytest.param(lambda rsa: unsigned_token(body(), kid=rsa.kid), id="alg-none"),
    pytest.param(lambda rsa: hs256_with_public_key(rsa, body()), id="hs256-with-public-key"),
    pytest.param(lambda rsa: rsa.sign(body(), alg="RS384"), id="rs384"),
    pytest.param(lambda rsa: "not-a-jwt", id="garbage"),
    pytest.param(lambda rsa: rsa.sign(body())[:-4] + "AAAA", id="bad-signature"),
])
def test_forged_or_malformed_tokens_are_rejected(verifier, rsa, forge):
    with pytest.raises(Unauthorized):
        verifier.verify(REALM, forge(rsa))


def test_es256_header_on_an_rsa_key_is_rejected(verifier, rsa, ec):
    # Signed by the EC key but naming the RSA key's kid: the RSA key fixes the algorithm.
    token = ec.sign(body(), kid=rsa.kid)
    with pytest.raises(Unauthorized):
        verifier.verify(REALM, token)


def test_signature_by_another_key_with_a_known_kid_is_rejected(verifier):
    impostor = rsa_key("rsa-1")
    with pytest.raises(Unauthorized):
        verifier.verify(REALM, impostor.sign(body()))


@pytest.mark.parametrize("change", [
    pytest.param({"exp": int(time.time()) - 86_400}, id="expired"),
    pytest.param({"nbf": int(time.time()) + 86_400}, id="nbf-in-future"),
    pytest.param({"iss": "https://idp.invalid/realms/other"}, id="wrong-iss"),
    pytest.param({"aud": "someone-else"}, id="wrong-aud"),
    pytest.param({"aud": None}, id="missing-aud"),
    pytest.param({"exp": None}, id="missing-exp"),
    pytest.param({"sub": None}, id="missing-sub"),
    pytest.param({"sub": "user 1"}, id="sub-not-an-id"),
    pytest.param({"sub": "x" * 65}, id="sub-too-long"),
    pytest.param({"teams": ["ok", "bad/team"]}, id="team-not-an-id"),
    pytest.param({"teams": "team-a"}, id="teams-not-a-list"),
    pytest.param({"realm_access": {"roles": "ticket_admin"}}, id="roles-not-a-list"),
])
def test_invalid_claims_are_rejected(verifier, rsa, change):
    with pytest.raises(Unauthorized):
        verifier.verify(REALM, rsa.sign(body(**change)))


def test_audience_is_not_checked_when_the_realm_has_none(verifier, rsa):
    realm = Realm(name="open", issuer=ISSUER, jwks_uri="https://idp.invalid/certs")
    assert verifier.verify(realm, rsa.sign(body(aud="anything"))).realm == "open"
    assert verifier.verify(realm, rsa.sign(body(aud=None))).realm == "open"


def test_unknown_kid_triggers_one_refetch_then_unauthorized(rsa):
    fetched = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return json.dumps(jwks(rsa)).encode()

    verifier = TokenVerifier(Realms({"acme": REALM}, fetch=fetch), build_caches({}).tokens)
    verifier.verify(REALM, rsa.sign(body()))
    assert len(fetched) == 1
    stranger = rsa_key("rotated-away")
    with pytest.raises(Unauthorized):
        verifier.verify(REALM, stranger.sign(body()))
    assert len(fetched) == 2
    with pytest.raises(Unauthorized):  # a flood of unknown kids does not hammer the issuer
        verifier.verify(REALM, stranger.sign(body(jti="again")))
    assert len(fetched) == 2


def test_oversized_token_is_rejected_without_a_key_lookup_naming_the_bound(verifier, keys, rsa):
    token = rsa.sign(body(padding="x" * MAX_TOKEN_BYTES))
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(REALM, token)
    assert keys.lookups == 0
    assert f"at most {MAX_TOKEN_BYTES} bytes" in refused.value.message
    assert refused.value.details == {"maxBytes": MAX_TOKEN_BYTES}


def test_a_token_of_hundreds_of_uuid_teams_is_accepted(verifier, rsa):
    """An agent in 81 teams had a 4.1 KB token, refused as "Invalid or expired" (issue 17)."""
    teams = [str(uuid.UUID(int=n)) for n in range(600)]
    token = rsa.sign(body(teams=teams, realm_access={"roles": ["ticket_agent"]}))
    assert 4096 < len(token) <= MAX_TOKEN_BYTES
    assert verifier.verify(REALM, token).teams == tuple(teams)


def test_missing_token_is_rejected(verifier):
    with pytest.raises(Unauthorized):
        verifier.verify(REALM, "")


def test_cache_returns_the_same_principal_without_reverifying(verifier, keys, rsa):
    token = rsa.sign(body(teams=["t1"]))
    first = verifier.verify(REALM, token)
    second = verifier.verify(REALM, token)
    assert second is first
    assert keys.lookups == 1


def test_cache_entry_is_dropped_at_exp(keys, rsa):
    clock = Clock()
    verifier = TokenVerifier(keys, build_caches({}).tokens, clock=clock)
    token = rsa.sign(body(exp=int(clock.now) + 60))
    verifier.verify(REALM, token)
    clock.now += 59
    verifier.verify(REALM, token)
    assert keys.lookups == 1
    clock.now += 1
    verifier.verify(REALM, token)  # re-verified (PyJWT's own clock still says valid)
    assert keys.lookups == 2


def test_cache_is_bounded_least_recently_used_first(keys, rsa):
    verifier = TokenVerifier(keys, build_caches({"tokens": 2}).tokens)
    a, b, c = (rsa.sign(body(jti=name)) for name in "abc")
    for token in (a, b, a, c):  # b is now the least recently used
        verifier.verify(REALM, token)
    assert keys.lookups == 3
    verifier.verify(REALM, a)
    assert keys.lookups == 3
    verifier.verify(REALM, b)
    assert keys.lookups == 4


def test_cache_is_per_realm(verifier, keys, rsa):
    token = rsa.sign(body())
    verifier.verify(REALM, token)
    other = Realm(name="other", issuer="https://idp.invalid/realms/other", audience="tally",
                  jwks_uri="https://idp.invalid/certs")
    with pytest.raises(Unauthorized):
        verifier.verify(other, token)
    assert keys.lookups == 2


def test_tenant_claims_are_normalised(verifier, rsa):
    one, two = uuid.uuid4(), uuid.uuid4()
    verified = verifier.verify(REALM, rsa.sign(body(tenant_id=str(one).upper(),
                                                    tenants=[str(two), "not-a-uuid", 7])))
    assert verified.tenants == frozenset({str(one), str(two)})
    assert not verified.holds_tenant(str(uuid.uuid4()))


def test_missing_roles_and_teams_give_an_empty_principal(verifier, rsa):
    verified = verifier.verify(REALM, rsa.sign(body(realm_access=None)))
    assert verified.roles == frozenset()
    assert verified.teams == ()


def test_rejection_is_logged_with_the_reason_but_not_the_token(verifier, rsa, caplog):
    token = rsa.sign(body(exp=int(time.time()) - 120))
    with caplog.at_level(logging.INFO, logger="tally.auth"), pytest.raises(Unauthorized):
        verifier.verify(REALM, token)
    assert "ExpiredSignatureError" in caplog.text
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text


@pytest.mark.parametrize("raw, expected", [
    ("6F9619FF-8B86-D011-B42D-00CF4FC964FF", "6f9619ff-8b86-d011-b42d-00cf4fc964ff"),
    ("6f9619ff-8B86-d011-b42d-00cf4fc964fF", "6f9619ff-8b86-d011-b42d-00cf4fc964ff"),
    ("6f9619ff-8b86-d011-b42d-00cf4fc964ff", "6f9619ff-8b86-d011-b42d-00cf4fc964ff"),
    # Only the canonical 8-4-4-4-12 form (contract §2): what uuid.UUID also reads is refused.
    ("6f9619ff8b86d011b42d00cf4fc964ff", None),
    (" 6f9619ff-8b86-d011-b42d-00cf4fc964ff\n", None),
    ("{6f9619ff-8b86-d011-b42d-00cf4fc964ff}", None),
    ("urn:uuid:6f9619ff-8b86-d011-b42d-00cf4fc964ff", None),
    ("6f9619ff-8b86d011-b42d-00cf4fc964ff-", None),
    ("6f9619ff-8b86-d011-b42d-00cf4fc964f", None),
    ("6f9619ff-8b86-d011-b42d-00cf4fc964fg", None),
    ("not-a-uuid", None),
    ("", None),
    (None, None),
    (42, None),
])
def test_canonical_uuid(raw, expected):
    assert canonical_uuid(raw) == expected


def test_every_canonical_uuid_is_what_the_uuid_parser_gives():
    """The fast path (a string already canonical is returned as is) agrees with uuid.UUID."""
    rng = random.Random(20261206)
    for _ in range(2000):
        value = str(uuid.UUID(int=rng.getrandbits(128)))
        assert canonical_uuid(value) == str(uuid.UUID(value)) == value
        assert canonical_uuid(value.upper()) == value
