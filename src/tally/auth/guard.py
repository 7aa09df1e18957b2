"""The request guard: headers, realm, token, tenant and role checks, in the contract's order."""
from __future__ import annotations

import functools
import logging
import re
import time
from typing import Any, Callable, TypeVar

from flask import Flask, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from tally.auth.realms import REALM_NAME
from tally.auth.tokens import TokenVerifier, VerifiedToken
from tally.core.model import ROLES, SERVICE_ROLE, Principal, canonical_uuid
from tally.errors import (Forbidden, InvalidHeader, NotAcceptable, RealmNotFound, TenantNotFound,
                          Unauthorized)
from tally.extensions import services
from tally.services.container import Caches
from tally.services.outages import Outage, is_unavailable
from tally.services.tenants import tenant_realm

log = logging.getLogger("tally.auth.guard")

PREFIX = "/api/v2/ticketing"
TENANT_CACHE_SECONDS = 30.0
TENANT_RETRY_SECONDS = 5.0  # while the database is down, how long a last known entry is reused
EXTENSION = "tally_guard"
# The Accept values clients send, which admit application/json without parsing the header.
PLAIN_ACCEPTS = frozenset(("", "application/json", "*/*"))
BEARER = re.compile(r"^Bearer[ \t]+(\S+)[ \t]*$", re.IGNORECASE)

F = TypeVar("F", bound=Callable[..., Any])


class Guard:
    """One app's guard: the token verifier, and (in the app's caches) recently seen tenants and
    headers that passed."""

    def __init__(self, verifier: TokenVerifier, caches: Caches,
                 clock: Callable[[], float] = time.monotonic):
        self.verifier = verifier
        self.clock = clock
        self._tenants = caches.tenants  # tenant -> realm, until self.clock passes its stamp
        # raw headers -> principal, until (tenant lookup by self.clock, token exp by the verifier's)
        self._passed = caches.passed
        self._outage = Outage(log, "the guard's tenant lookup")

    def check(self) -> Principal:
        """Check the current request in the contract's order; return its Principal or raise.

        Headers that passed recently pass again without the work (a badge polls with the same
        ones every few seconds), for as long as each check's own answer still holds: the
        token's verification until it expires, the tenant's realm until it is looked up again.
        """
        _check_accept()
        headers = request.headers
        raw = (headers.get("x-tenantid"), headers.get("realmname"),
               headers.get("Authorization"))
        principal = self.passed(raw)
        if principal is not None:
            return principal
        tenant_id, realm_name = _check_headers()
        realm = services().realms.get(realm_name)
        if realm is None:
            raise RealmNotFound(f"Realm {realm_name} does not exist")
        token = self.verifier.verify(realm, _bearer_token())
        known, tenant_until = self._tenant_entry(tenant_id)
        if known != realm_name:
            raise TenantNotFound(f"Tenant {tenant_id} does not exist")
        principal = _authorise(token, tenant_id)
        # weighed by the token: it may be 32 KiB (tally.auth.tokens.MAX_TOKEN_BYTES)
        return self._passed.put(raw, principal, (tenant_until, token.expires_at),
                                len(raw[2] or ""))

    def passed(self, raw: tuple[str | None, str | None, str | None]) -> Principal | None:
        """The principal of headers (x-tenantid, realmname, Authorization, as sent) that passed
        every check and whose checks' answers all still hold; None: check them (again)."""
        return self._passed.get(raw, (self.clock(), self.verifier.now()))

    def _tenant_entry(self, tenant_id: str) -> tuple[str | None, float]:
        """The realm the tenant is provisioned in (None: not provisioned) and the moment (by
        self.clock) until which that answer is remembered.

        While the database is unavailable a tenant seen before keeps its last known realm (the
        database is retried every TENANT_RETRY_SECONDS); an unknown tenant raises the error.
        """
        now = self.clock()
        hit = self._tenants.get(tenant_id, now)
        if hit is not None:
            return hit
        last = self._tenants.stale(tenant_id)
        try:
            realm = tenant_realm(services().db, tenant_id)
        except SQLAlchemyError as error:
            if last is None or not is_unavailable(error):
                raise
            self._outage.failed(error)
            return self._remember(tenant_id, last[0], now + TENANT_RETRY_SECONDS)
        self._outage.recovered()
        if realm is None:
            return None, now
        return self._remember(tenant_id, realm, now + TENANT_CACHE_SECONDS)

    def _remember(self, tenant_id: str, realm: str, until: float) -> tuple[str, float]:
        return self._tenants.put(tenant_id, (realm, until), until)


def install(app: Flask) -> Guard:
    """Guard every request under /api/v2/ticketing; on success `flask.g.principal` is set."""
    svc = app.extensions["tally"]
    guard = Guard(TokenVerifier(svc.realms, svc.caches.tokens), svc.caches)
    app.extensions[EXTENSION] = guard

    @app.before_request
    def _guard() -> None:
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            g.principal = current_app.extensions[EXTENSION].check()

    return guard


def require_roles(*roles: str) -> Callable[[F], F]:
    """Raise Forbidden unless the caller holds one of `roles`; put it above flask-smorest's."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = g.get("principal")
            if principal is None:
                raise Unauthorized()
            if not principal.has_any(*roles):
                raise Forbidden(f"This call needs one of the roles {', '.join(roles)}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _check_accept() -> None:
    if request.headers.get("Accept", "").strip() in PLAIN_ACCEPTS:
        return
    offered = ["application/json"]
    if request.path.endswith("/stream"):
        offered.append("text/event-stream")  # EventSource always asks for this
    if request.accept_mimetypes.best_match(offered) is None:
        raise NotAcceptable()


def _check_headers() -> tuple[str, str]:
    tenant_id = canonical_uuid(request.headers.get("x-tenantid"))
    if tenant_id is None:
        raise InvalidHeader("Header x-tenantid must be a UUID", {"header": "x-tenantid"})
    realm_name = request.headers.get("realmname", "")
    if not REALM_NAME.fullmatch(realm_name):
        raise InvalidHeader("Header realmname is missing or malformed", {"header": "realmname"})
    return tenant_id, realm_name


def _bearer_token() -> str:
    sent = request.headers.get("Authorization")
    match = BEARER.fullmatch(sent or "")
    if match is None:
        raise Unauthorized("A bearer token is required", token_sent=sent is not None)
    return match.group(1)


def _authorise(token: VerifiedToken, tenant_id: str) -> Principal:
    """Step 5: the token must name the tenant (a service token is trusted realm-wide) and a role."""
    if SERVICE_ROLE not in token.roles and not token.holds_tenant(tenant_id):
        raise Forbidden("The token is not valid for this tenant")
    if not token.roles.intersection(ROLES):
        raise Forbidden("The token holds no ticket role")
    return token.principal(tenant_id)
