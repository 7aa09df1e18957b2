"""The requests the benchmark sends, their tokens, and a check that each answers as expected.

Every call is made once through urllib before wrk sends it: the first call of a cold group
recomputes (and installs) its counters, so the load that follows measures warm reads only, and
the check records the response size the bare Flask app (bench/bare.py) must match.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import jwt
from cryptography.hazmat.primitives import serialization

from bench.seed import AGENTS, PROFILE_ID, TEAMS
from bench.wrk import HttpCall
from tally.dev import keys as devkeys
from tally.dev import baseline
from tally.dev.launcher import EXAMPLE_FILTERS

API = "/api/v2/ticketing"
NOTIFICATION_COUNT = f"{API}/ticket/notification/count"
TIMEZONE = "Asia/Calcutta"
AGENT = AGENTS[0]
AGENT_TEAMS = TEAMS[:3]
TOKEN_TTL = 6 * 3600


@dataclass(frozen=True)
class Checked:
    status: int
    source: str | None
    etag: str | None
    size: int


@lru_cache(maxsize=4)
def _signing_key(var_dir: str) -> Any:
    """The dev realm's private key, parsed once (devkeys.dev_token parses it per token, which
    takes ~0.2 s: too slow for hundreds of users)."""
    devkeys.ensure_dev_realm(var_dir)
    pem = (Path(var_dir) / "dev" / "private.pem").read_bytes()
    return serialization.load_pem_private_key(pem, password=None)


def mint(var_dir: str, tenant: str, user: str, roles: Sequence[str],
         teams: Sequence[str] = ()) -> str:
    """A token with the claims devkeys.dev_token gives, signed with the dev realm's key."""
    now = int(time.time())
    claims = {"iss": devkeys.DEV_ISSUER, "aud": devkeys.DEV_AUDIENCE, "sub": user, "iat": now,
              "nbf": now, "exp": now + TOKEN_TTL, "jti": str(uuid.uuid4()), "tenant_id": tenant,
              "realm_access": {"roles": list(roles)}, "teams": list(teams)}
    return jwt.encode(claims, _signing_key(var_dir), algorithm="RS256",
                      headers={"kid": devkeys.DEV_KID})


def headers(var_dir: str, tenant: str, user: str, roles: Sequence[str],
            teams: Sequence[str] = ()) -> dict[str, str]:
    token = mint(var_dir, tenant, user, roles, teams)
    return {"Authorization": f"Bearer {token}", "x-tenantid": tenant,
            "realmname": devkeys.DEV_REALM, "accept": "application/json"}


def send(base_url: str, call: HttpCall) -> Checked:
    """Make `call` once; its status, X-Count-Source, ETag and body size."""
    data = call.body.encode() if call.body is not None else None
    request = urllib.request.Request(base_url + call.path, data=data, method=call.method,
                                     headers=call.headers)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            body = response.read()
            return Checked(response.status, response.headers.get("X-Count-Source"),
                           response.headers.get("ETag"), len(body))
    except urllib.error.HTTPError as error:
        body = error.read()
        return Checked(error.code, error.headers.get("X-Count-Source"),
                       error.headers.get("ETag"), len(body))


def warm(base_url: str, calls: Sequence[HttpCall], status: int = 200) -> int:
    """Make every call until it answers from warm counters; returns the largest body size."""
    size = 0
    for call in calls:
        first = send(base_url, call)
        again = send(base_url, call) if first.source != "cache" else first
        if again.status != status or (status == 200 and again.source != "cache"):
            raise RuntimeError(f"{call.method} {call.path} answered {again.status} "
                               f"(source {again.source}), expected {status} from cache")
        size = max(size, again.size)
    return size


def notification_calls(var_dir: str, tenant: str, users: Sequence[str]) -> list[HttpCall]:
    """GET the badge (full view) as each of `users` in turn."""
    return [HttpCall("GET", NOTIFICATION_COUNT, headers(var_dir, tenant, user, ["ticket_agent"]))
            for user in users]


def conditional_calls(base_url: str, calls: Sequence[HttpCall]) -> list[HttpCall]:
    """The same calls with If-None-Match set to each user's current ETag (answered 304)."""
    out = []
    for call in calls:
        etag = send(base_url, call).etag
        if not etag:
            raise RuntimeError("the notification count answered without an ETag")
        out.append(replace(call, headers={**call.headers, "If-None-Match": etag}))
    return out


def ticket_call(var_dir: str, tenant: str, profile: bool = False) -> HttpCall:
    """POST /ticket/count with the API document's 30 filter ids as an agent of 3 teams in
    Asia/Calcutta; with `profile`, as type=template within the benchmark's template profile."""
    body = {"templateProfileFilterId": PROFILE_ID if profile else None,
            "filterIds": list(EXAMPLE_FILTERS), "timezone": TIMEZONE}
    view = "template" if profile else "agent"
    return HttpCall("POST", f"{API}/ticket/count?type={view}&module=ticketing",
                    {**headers(var_dir, tenant, AGENT, ["ticket_agent"], AGENT_TEAMS),
                     "content-type": "application/json", "issupportrequest": "false"},
                    json.dumps(body))


def service_headers(var_dir: str, tenant: str) -> dict[str, str]:
    return {**headers(var_dir, tenant, "ticket-service", ["ticket_service"]),
            "content-type": "application/json"}


def baseline_calls(calls: Sequence[HttpCall], size: int) -> list[HttpCall]:
    """The same method, headers and body against tally's in-app constant route, answering
    `size` bytes (a size the route cannot answer is refused: the row would compare other bytes)."""
    if not baseline.MIN_BYTES <= size <= baseline.MAX_BYTES:
        raise ValueError(f"{baseline.PATH} answers {baseline.MIN_BYTES} to {baseline.MAX_BYTES} "
                         f"bytes, not {size}")
    return [replace(call, path=f"{baseline.PATH}?bytes={size}") for call in calls]
