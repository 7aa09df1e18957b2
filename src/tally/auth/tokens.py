"""Bearer-token verification with PyJWT into the claims tally uses, cached until they expire."""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import jwt
from jwt import PyJWK

from tally.auth.realms import Realm
from tally.core.cache import Cache
from tally.core.model import ID_PATTERN, ROLES, Principal, canonical_uuid
from tally.errors import KeyLookupError, Unauthorized

log = logging.getLogger("tally.auth")

ALGORITHMS = ("RS256", "ES256")  # fixed here, never taken from the token
# The largest token accepted: a realm's token grows ~52 bytes per UUID team, so 32 KiB holds an
# agent in ~600 teams. Every layer in front must pass such a header: config/gunicorn.conf.py's
# limit_request_field_size (tests/auth/test_big_tokens.py holds them together).
MAX_TOKEN_BYTES = 32768
LEEWAY_SECONDS = 10  # clock skew tolerated between the issuer and us


class KeySource(Protocol):
    """Where signing keys come from (tally.auth.realms.Realms, or a fake in tests)."""

    def signing_key(self, realm: Realm, kid: str | None) -> PyJWK: ...


@dataclass(frozen=True)
class VerifiedToken:
    """What a valid token says about its bearer, before a tenant is chosen."""

    realm: str
    user_id: str
    roles: frozenset[str]
    teams: tuple[str, ...]
    tenants: frozenset[str]  # canonical lowercase UUIDs from `tenant_id` and `tenants`
    expires_at: int

    def holds_tenant(self, tenant_id: str) -> bool:
        """True when the token names `tenant_id` (canonical form) among its tenants."""
        return tenant_id in self.tenants

    def principal(self, tenant_id: str) -> Principal:
        return Principal(user_id=self.user_id, tenant_id=tenant_id, realm=self.realm,
                         roles=self.roles, teams=self.teams)


class TokenVerifier:
    """Verifies tokens for a realm and remembers valid ones in `cache` (the app's
    Caches.tokens: a verification holds until the token's exp, by `clock`)."""

    def __init__(self, keys: KeySource, cache: Cache[bytes, VerifiedToken], *,
                 clock: Callable[[], float] = time.time):
        self._keys = keys
        self._cache = cache
        self._clock = clock

    def now(self) -> float:
        """The clock a cached verification expires by (wall time, seconds)."""
        return self._clock()

    def verify(self, realm: Realm, token: str) -> VerifiedToken:
        """The token's claims if it is valid for `realm`; raise Unauthorized otherwise."""
        if not token:
            raise Unauthorized("A bearer token is required", token_sent=False)
        size = len(token.encode("utf-8", "replace"))
        if size > MAX_TOKEN_BYTES:
            log.info("token rejected for realm %s: %d bytes, over %d", realm.name, size,
                     MAX_TOKEN_BYTES)
            raise Unauthorized(f"The token is {size} bytes; tokens of at most {MAX_TOKEN_BYTES} "
                               "bytes are accepted", {"maxBytes": MAX_TOKEN_BYTES})
        digest = hashlib.sha256(f"{realm.name}\0{token}".encode("utf-8", "replace")).digest()
        cached = self._cache.get(digest, self._clock())
        if cached is not None:
            return cached
        try:
            verified = self._decode(realm, token)
        except (jwt.InvalidTokenError, KeyLookupError) as error:
            log.info("token rejected for realm %s: %s: %s", realm.name, type(error).__name__,
                     error)
            raise Unauthorized() from None
        return self._cache.put(digest, verified, verified.expires_at)

    def _decode(self, realm: Realm, token: str) -> VerifiedToken:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise jwt.InvalidTokenError("kid must be a string")
        if header.get("alg") not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"alg {header.get('alg')!r} is not allowed")
        key = self._keys.signing_key(realm, kid)
        # Only the algorithm the key was published for, and only if it is one of ours: an RSA
        # key never verifies an ES256 token, nor an HMAC key anything.
        algorithms = [key.algorithm_name] if key.algorithm_name in ALGORITHMS else []
        if not algorithms:
            raise jwt.InvalidAlgorithmError(f"the realm's key is for {key.algorithm_name}")
        claims = jwt.decode(token, key.key, algorithms=algorithms, issuer=realm.issuer,
                            audience=realm.audience, leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "iss", "sub"],
                                     "verify_aud": realm.audience is not None})
        return _claims(realm, claims)


def _claims(realm: Realm, claims: dict[str, Any]) -> VerifiedToken:
    """Pick and check the claims tally uses; malformed ones make the token invalid."""
    user = claims["sub"]
    if not isinstance(user, str) or not ID_PATTERN.fullmatch(user):
        raise jwt.InvalidTokenError("sub is not a valid id")
    access = claims.get("realm_access") or {}
    roles = access.get("roles", []) if isinstance(access, dict) else None
    if not isinstance(roles, list):
        raise jwt.InvalidTokenError("realm_access.roles is not a list")
    teams = claims.get("teams") or []
    if not isinstance(teams, list) or not all(
            isinstance(team, str) and ID_PATTERN.fullmatch(team) for team in teams):
        raise jwt.InvalidTokenError("teams is not a list of valid ids")
    named = [claims.get("tenant_id")]
    listed = claims.get("tenants")
    if isinstance(listed, list):
        named.extend(listed)
    tenants = frozenset(t for t in (canonical_uuid(value) for value in named) if t)
    return VerifiedToken(realm=realm.name, user_id=user,
                         roles=frozenset(r for r in roles if r in ROLES),
                         # interned: the cached tokens of one team's members share its id
                         teams=tuple(sys.intern(team) for team in dict.fromkeys(teams)),
                         tenants=tenants,
                         expires_at=int(claims["exp"]))
