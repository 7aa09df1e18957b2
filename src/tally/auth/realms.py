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

from tally.errors import ConfigError, KeyLookupError

log = logging.getLogger("tally.auth")

REALM_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
FETCH_TIMEOUT = 3.0  # seconds for one JWKS download
KEYS_TTL = 300.0  # seconds a fetched JWKS is used before it is fetched again
REFETCH_INTERVAL = 30.0  # at most one unknown-kid refetch per realm in this many seconds
MISSING_RETRY_INTERVAL = 5.0  # with no keys yet, at most one download attempt in this many seconds
MAX_JWKS_BYTES = 1024 * 1024

Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class Realm:
    """One realm's entry in the realms file."""

    name: str
    issuer: str
    audience: str | None = None
    jwks_uri: str | None = None
    jwks_file: str | None = None


def fetch_url(url: str, timeout: float = FETCH_TIMEOUT) -> bytes:
    """Download a JWKS document; a server slower than `timeout` seconds raises an OSError."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return response.read(MAX_JWKS_BYTES + 1)


class _KeyCache:
    """One realm's key set and when it was last downloaded, tried, and refetched for a kid.

    `lock` guards the fields and is never held during a download; `fetching` is held by the one
    thread downloading, so a slow issuer delays only callers that have no key to answer from.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fetching = threading.Lock()
        self.keys: PyJWKSet | None = None
        self.loaded_at = float("-inf")  # last successful download (or kept keys after a failure)
        self.tried_at = float("-inf")  # last download attempt, successful or not
        self.refetched_at = float("-inf")  # last download forced by an unknown kid
        self.attempts = 0


class Realms:
    """The configured realms, by name, and the signing keys they publish."""

    def __init__(self, realms: dict[str, Realm] | None = None, *, fetch: Fetch = fetch_url,
                 clock: Callable[[], float] = time.monotonic):
        self._realms = dict(realms or {})
        self._fetch = fetch
        self._clock = clock
        # one key set per realm of the realms file (a realm is looked up here, never made up)
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
        """The realm's key for `kid` (no kid: its only key); raise KeyLookupError if none fits.

        The key set is downloaded when missing (retried at most every MISSING_RETRY_INTERVAL) or
        older than KEYS_TTL, and once more for an unknown kid at most every REFETCH_INTERVAL (a
        rotated key). One thread downloads at a time; meanwhile the others answer from the keys
        already held, or, holding none, wait for that download instead of starting their own.
        """
        cache = self._caches.setdefault(realm.name, _KeyCache())
        with cache.lock:
            now, keys, attempts = self._clock(), cache.keys, cache.attempts
            key = _pick(keys, kid)
            if keys is None:
                due = now - cache.tried_at >= MISSING_RETRY_INTERVAL
            else:
                due = now - cache.loaded_at >= KEYS_TTL
                if key is None and now - cache.refetched_at >= REFETCH_INTERVAL:
                    cache.refetched_at, due = now, True
        if due and cache.fetching.acquire(blocking=keys is None):
            try:
                if cache.attempts == attempts:  # nobody downloaded while this thread waited
                    self._reload(realm, cache)
                key = _pick(cache.keys, kid)
            finally:
                cache.fetching.release()
        if key is None:
            held = "no keys yet" if cache.keys is None else f"no signing key for kid {kid!r}"
            raise KeyLookupError(f"realm {realm.name} has {held}")
        return key

    def _reload(self, realm: Realm, cache: _KeyCache) -> None:
        """Download the key set; on failure keep the old one, or raise when there is none."""
        try:
            keys, error = self._read(realm), None
        except KeyLookupError as failure:
            keys, error = None, failure
        with cache.lock:
            cache.attempts += 1
            cache.tried_at = self._clock()
            if keys is not None:
                cache.keys, cache.loaded_at = keys, cache.tried_at
            elif cache.keys is not None:
                log.warning("keeping the previous keys of realm %s: %s", realm.name, error)
                cache.loaded_at = cache.tried_at  # retry after another TTL, not on every request
            else:
                raise error  # type: ignore[misc]

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
