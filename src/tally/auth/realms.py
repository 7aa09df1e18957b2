"""The realms file (issuer, audience, keys per realm) and cached JWKS signing-key lookup."""
from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWTError

from config import ConfigError

log = logging.getLogger("tally.auth")

REALM_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
FETCH_TIMEOUT = 3.0  # seconds for one JWKS download
KEYS_TTL = 300.0  # seconds a fetched JWKS is used before it is fetched again
REFETCH_INTERVAL = 30.0  # at most one unknown-kid refetch per realm in this many seconds
MAX_JWKS_BYTES = 1024 * 1024

Fetch = Callable[[str], bytes]


class KeyLookupError(Exception):
    """No usable signing key: the JWKS could not be read, or holds no key for the token's kid."""


@dataclass(frozen=True)
class Realm:
    """One realm's entry in the realms file."""

    name: str
    issuer: str
    audience: str | None = None
    jwks_uri: str | None = None
    jwks_file: str | None = None


def fetch_url(url: str) -> bytes:
    """Download a JWKS document with a short timeout."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
        return response.read(MAX_JWKS_BYTES + 1)


class _KeyCache:
    """One realm's key set, when it was loaded, and when an unknown kid last forced a reload."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: PyJWKSet | None = None
        self.loaded_at = float("-inf")
        self.refetched_at = float("-inf")


class Realms:
    """The configured realms, by name, and the signing keys they publish."""

    def __init__(self, realms: dict[str, Realm] | None = None, *, fetch: Fetch = fetch_url,
                 clock: Callable[[], float] = time.monotonic):
        self._realms = dict(realms or {})
        self._fetch = fetch
        self._clock = clock
        self._caches = {name: _KeyCache() for name in self._realms}

    @classmethod
    def load(cls, path: str, *, fetch: Fetch = fetch_url) -> "Realms":
        """Read the realms file at `path` ("" means none); raise ConfigError if it is unusable."""
        if not path:
            return cls(fetch=fetch)
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            base = Path(path).resolve().parent
            if not isinstance(raw, dict):
                raise ValueError("the file must hold a JSON object of realms")
            realms = {name: _parse_realm(name, entry, base) for name, entry in raw.items()}
        except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise ConfigError(f"TALLY_REALMS_FILE {path!r} is unusable: {error}") from None
        loaded = cls(realms, fetch=fetch)
        for realm in realms.values():
            if realm.jwks_file:
                try:
                    loaded._read(realm)
                except KeyLookupError as error:
                    raise ConfigError(f"TALLY_REALMS_FILE {path!r}: realm {realm.name!r}: "
                                      f"{error}") from None
        return loaded

    def __contains__(self, name: str) -> bool:
        return name in self._realms

    def names(self) -> list[str]:
        return sorted(self._realms)

    def get(self, name: str) -> Realm | None:
        """The realm called `name`, or None."""
        return self._realms.get(name)

    def signing_key(self, realm: Realm, kid: str | None) -> PyJWK:
        """The realm's key for `kid` (no kid: its only key); raise KeyLookupError if none fits."""
        cache = self._caches.setdefault(realm.name, _KeyCache())
        with cache.lock:
            now = self._clock()
            if cache.keys is None or now - cache.loaded_at >= KEYS_TTL:
                self._reload(realm, cache, now)
            key = _pick(cache.keys, kid)
            if key is None and now - cache.refetched_at >= REFETCH_INTERVAL:
                # A rotated key: the issuer may have published it since we last looked.
                cache.refetched_at = now
                self._reload(realm, cache, now)
                key = _pick(cache.keys, kid)
        if key is None:
            raise KeyLookupError(f"realm {realm.name} has no signing key for kid {kid!r}")
        return key

    def _reload(self, realm: Realm, cache: _KeyCache, now: float) -> None:
        """Replace the cached key set; on failure keep the old one if there is one."""
        try:
            cache.keys = self._read(realm)
            cache.loaded_at = now
        except KeyLookupError as error:
            if cache.keys is None:
                raise
            log.warning("keeping the previous keys of realm %s: %s", realm.name, error)
            cache.loaded_at = now  # retry after another TTL, not on every request

    def _read(self, realm: Realm) -> PyJWKSet:
        try:
            if realm.jwks_file:
                data = Path(realm.jwks_file).read_bytes()
            else:
                data = self._fetch(realm.jwks_uri or "")
            if len(data) > MAX_JWKS_BYTES:
                raise ValueError("the JWKS document is too large")
            document = json.loads(data)
            if not isinstance(document, dict):
                raise ValueError("the JWKS document is not a JSON object")
            return PyJWKSet.from_dict(document)
        except (OSError, ValueError, PyJWTError) as error:  # URLError and timeouts are OSErrors
            raise KeyLookupError(f"cannot read the keys of realm {realm.name}: {error}") from None


def _pick(keys: PyJWKSet | None, kid: str | None) -> PyJWK | None:
    if keys is None:
        return None
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    return next((key for key in keys.keys if key.key_id == kid), None)


def _parse_realm(name: Any, entry: Any, base: Path) -> Realm:
    if not isinstance(name, str) or not REALM_NAME.fullmatch(name):
        raise ValueError(f"realm name {name!r} must match {REALM_NAME.pattern}")
    if not isinstance(entry, dict):
        raise ValueError(f"realm {name!r} must be a JSON object")
    unknown = set(entry) - {"issuer", "audience", "jwks_uri", "jwks_file"}
    if unknown:
        raise ValueError(f"realm {name!r} has unknown settings {sorted(unknown)}")
    issuer, audience = entry.get("issuer"), entry.get("audience")
    jwks_uri, jwks_file = entry.get("jwks_uri"), entry.get("jwks_file")
    if not isinstance(issuer, str) or not issuer:
        raise ValueError(f"realm {name!r} needs an issuer string")
    if audience is not None and (not isinstance(audience, str) or not audience):
        raise ValueError(f"realm {name!r}: audience must be a non-empty string")
    if (jwks_uri is None) == (jwks_file is None):
        raise ValueError(f"realm {name!r} needs exactly one of jwks_uri and jwks_file")
    if jwks_uri is not None and (not isinstance(jwks_uri, str)
                                 or not jwks_uri.startswith(("https://", "http://"))):
        raise ValueError(f"realm {name!r}: jwks_uri must be an http(s) URL")
    if jwks_file is not None:
        if not isinstance(jwks_file, str) or not jwks_file:
            raise ValueError(f"realm {name!r}: jwks_file must be a path")
        jwks_file = str(base / jwks_file)  # relative paths are relative to the realms file
    return Realm(name=name, issuer=issuer, audience=audience, jwks_uri=jwks_uri,
                 jwks_file=jwks_file)
