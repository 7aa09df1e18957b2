"""Seeded traffic for the chaos suite: producers of change events, and readers that warm counts.

Producers share each tenant's state (notification ids, the newest ticket version sent, events sent
so far), so concurrent producers race on the same tickets; about one event in eight is a
redelivery of an earlier one (same eventId), some in the same batch. Readers ask for notification
and ticket counts as several users and roles, with a few filter sets, zones and a profile, and now
and then mark notifications read through the user API (a write too).
"""
from __future__ import annotations

import collections
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from tally.dev import keys as devkeys
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, STATUSES
from tests.support.tokens import REALM
from tests.support.tickets import deleted, upserted
from tests.support import events as b

USERS = ("u0", "u1", "auth0|u2", "u3")
TEAMS = ("t0", "t1", "t|2")
TAGS = ("vip", "billing", "bug")
ZONES = ("UTC", "Asia/Calcutta", "America/New_York")
HOUR = 3_600_000
CUSTOM = {
    "vip-or-critical": {"any": [{"field": "tags", "op": "contains", "value": "vip"},
                                {"field": "priority", "op": "eq", "value": "critical"}]},
    "mine-open": {"all": [{"field": "assigneeId", "op": "eq", "value": "$me"},
                          {"field": "status", "op": "ne", "value": "closed"}]},
    "my-teams-sla-4h": {"all": [{"field": "teamId", "op": "in", "value": "$myTeams"},
                                {"field": "slaDueAt", "op": "within_next", "value": "4h"}]},
}
PROFILE = {"all": [{"field": "priority", "op": "in", "value": ["critical", "high", "medium"]}]}
TIMEOUT_S = 120
RETRIES_503 = 5
HOLD_DEADLINE_S = 300


@dataclass(frozen=True)
class Caller:
    """A reader's identity: user, roles, teams and the count views it may ask for."""

    user: str
    roles: tuple[str, ...]
    teams: tuple[str, ...]
    views: tuple[str, ...]


CALLERS = (Caller("adm", ("ticket_admin",), ("t0",), ("template", "agent")),
           Caller("u1", ("ticket_agent",), ("t0", "t|2"), ("agent", "template", "user")),
           Caller("u3", ("ticket_agent",), (), ("agent",)),
           Caller("u0", ("ticket_user",), (), ("user", "template")))
SERVICE = Caller("svc", ("ticket_service",), (), ())


@dataclass
class Tenant:
    """One tenant's shared producer state and its filters (id -> conditions)."""

    id: str
    start_ms: int
    filters: dict[str, dict] = field(default_factory=dict)
    profile_id: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    notifications: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    sent: list[dict] = field(default_factory=list)


class Api:
    """tally's HTTP API as the ticket service and the badge clients call it (one session each)."""

    def __init__(self, base: str, var_dir: str):
        self.base, self.var_dir = base + "/api/v2/ticketing", var_dir
        self._local = threading.local()
        self._tokens: dict[tuple, str] = {}

    def headers(self, tenant: str, caller: Caller) -> dict[str, str]:
        key = (tenant, caller)
        if key not in self._tokens:
            self._tokens[key] = devkeys.dev_token(self.var_dir, tenant=tenant, user=caller.user,
                                                  roles=list(caller.roles),
                                                  teams=list(caller.teams), ttl=3600)
        return {"Authorization": f"Bearer {self._tokens[key]}", "x-tenantid": tenant,
                "realmname": REALM, "accept": "application/json"}

    def call(self, method: str, path: str, tenant: str, caller: Caller,
             **kwargs: Any) -> requests.Response:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session.request(method, self.base + path, timeout=TIMEOUT_S,
                                           headers=self.headers(tenant, caller), **kwargs)

    def ticket_count(self, tenant: Tenant, caller: Caller, view: str, ids: list[str], zone: str,
                     profile: bool) -> requests.Response:
        body = {"filterIds": ids, "timezone": zone,
                "templateProfileFilterId": tenant.profile_id if profile else None}
        return self.call("POST", f"/ticket/count?type={view}&module=ticketing", tenant.id, caller,
                         json=body)


class Budget:
    """The events still to send, handed out in batches; `sent` counts those answered 202.

    Once `hold_at` events are handed out, producers wait for `released` (set after the faults
    and the warm pass), so the last part of the stream always lands on warm counters.
    """

    def __init__(self, total: int, hold_at: int):
        self.total, self.left, self.sent, self.duplicates, self.batches = total, total, 0, 0, 0
        self.hold_at, self.released = hold_at, threading.Event()
        self.errors: list[str] = []
        self.retried: list[str] = []  # 503 answers (retried with the same events)
        self.lock = threading.Lock()

    def take(self, wanted: int) -> int:
        if self.total - self.left >= self.hold_at:
            self.released.wait(HOLD_DEADLINE_S)
        with self.lock:
            granted = min(wanted, self.left)
            self.left -= granted
            return granted

    def done(self, events: int, duplicates: int) -> None:
        with self.lock:
            self.sent, self.duplicates = self.sent + events, self.duplicates + duplicates
            self.batches += 1


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ticket(rng: random.Random, tenant: Tenant, ticket_id: str, version: int) -> dict:
    def maybe(pool: tuple[str, ...], null: float = 0.25) -> str | None:
        return None if rng.random() < null else rng.choice(pool)

    def stamp(null: float) -> int | None:
        return None if rng.random() < null else tenant.start_ms + rng.randint(-72, 72) * HOUR

    return {"id": ticket_id, "version": version, "status": rng.choice(STATUSES),
            "priority": rng.choice(PRIORITIES), "teamId": maybe(TEAMS),
            "assigneeId": maybe(USERS + ("adm",)), "requesterId": maybe(USERS, 0.1),
            "category": maybe(("hardware", "access")), "tags": rng.sample(TAGS, rng.randint(0, 2)),
            "isSupportRequest": rng.random() < 0.3, "createdAt": stamp(0.0),
            "dueAt": stamp(0.3), "slaDueAt": stamp(0.3)}


def next_event(rng: random.Random, tenant: Tenant) -> tuple[dict, bool]:
    """One random event for `tenant` (call with tenant.lock held) and whether it is a redelivery."""
    roll = rng.random()
    if roll < 0.12 and tenant.sent:
        return dict(rng.choice(tenant.sent[-400:])), True
    eid, notes, versions = _event_id(rng), tenant.notifications, tenant.versions
    if roll < 0.40 or not notes:
        nid = f"n{len(notes)}"
        notes.append(nid)
        event = b.created(nid, rng.choice(USERS), rng.choice(NOTIFICATION_TYPES),
                          rng.choice(PRIORITIES), event_id=eid)
    elif roll < 0.48:
        picked = rng.sample(notes, min(len(notes), rng.randint(1, 5)))
        event = b.read(rng.choice(USERS), picked + ["n-unknown"] * (rng.random() < 0.2),
                       event_id=eid)
    elif roll < 0.54:
        event = b.deleted(rng.choice(notes) if rng.random() < 0.9 else "n-unknown", event_id=eid)
    elif roll < 0.70 or not versions:
        tid = f"T{len(versions)}"
        versions[tid] = 1
        event = upserted(_ticket(rng, tenant, tid, 1), eid)
    else:
        tid = rng.choice(sorted(versions))
        current = versions[tid]
        if roll < 0.88:
            versions[tid] = current + 1
            event = upserted(_ticket(rng, tenant, tid, current + 1), eid)
        elif roll < 0.94:  # a stale version (or the same one again): ignored by tally
            event = upserted(_ticket(rng, tenant, tid, max(0, current - rng.randint(0, 1))), eid)
        else:
            versions[tid] = current + 1
            event = deleted({"id": tid, "version": current + 1}, eid)
    tenant.sent.append(event)
    return event, False


def produce(number: int, seed: int, tenants: list[Tenant], api: Api, budget: Budget) -> None:
    """Send batches of 1-25 events to random tenants until the budget is spent."""
    rng = random.Random(f"{seed}/producer/{number}")
    while size := budget.take(rng.randint(1, 25)):
        tenant = rng.choice(tenants)
        with tenant.lock:
            made = [next_event(rng, tenant) for _ in range(size)]
        if not send(api, tenant, [event for event, _ in made], budget):
            return
        budget.done(size, sum(dup for _, dup in made))


def send(api: Api, tenant: Tenant, events: list[dict], budget: Budget) -> bool:
    """POST a batch as the ticket service does: a 503 (nothing accepted) is retried a few times."""
    for attempt in range(1, RETRIES_503 + 1):
        try:
            response = api.call("POST", "/events", tenant.id, SERVICE, json={"events": events})
        except requests.RequestException as error:
            budget.errors.append(f"POST /events failed: {error}")
            return False
        if response.status_code == 202:
            return True
        if response.status_code != 503 or attempt == RETRIES_503:
            budget.errors.append(f"POST /events {response.status_code}: {response.text}")
            return False
        with budget.lock:
            budget.retried.append(response.json()["error"]["message"])
        time.sleep(0.1 * attempt)
    return False


class Readers:
    """Threads reading counts until stopped; `sources` counts answers by X-Count-Source."""

    def __init__(self, seed: int, tenants: list[Tenant], api: Api, count: int):
        self.seed, self.tenants, self.api = seed, tenants, api
        self.sources: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(count)]

    def start(self) -> "Readers":
        for thread in self.threads:
            thread.start()
        return self

    def finish(self, deadline_s: float = 300) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(deadline_s)
            assert not thread.is_alive(), "a reader did not stop"

    def _run(self, number: int) -> None:
        rng = random.Random(f"{self.seed}/reader/{number}")
        while not self.stop.is_set():
            tenant = rng.choice(self.tenants)
            try:
                response = self._one(rng, tenant)
            except requests.RequestException as error:
                self.errors.append(f"read failed: {error}")
                continue
            if response.status_code != 200:
                self.errors.append(f"{response.request.path_url} {response.status_code}: "
                                   f"{response.text[:300]}")
            self.sources[response.headers.get("X-Count-Source", "none")] += 1

    def _one(self, rng: random.Random, tenant: Tenant) -> requests.Response:
        roll = rng.random()
        user = Caller(rng.choice(USERS), ("ticket_user",), (), ())
        if roll < 0.40:
            view = "minimal" if rng.random() < 0.2 else "full"
            return self.api.call("GET", f"/ticket/notification/count?view={view}", tenant.id,
                                 user)
        if roll < 0.45:
            with tenant.lock:
                ids = rng.sample(tenant.notifications, min(3, len(tenant.notifications)))
            body = {"ids": ids} if ids and rng.random() < 0.8 else {"all": True}
            return self.api.call("POST", "/ticket/notification/read", tenant.id, user, json=body)
        caller = rng.choice(CALLERS)
        ids = list(tenant.filters)
        if rng.random() < 0.5:
            ids = rng.sample(ids, 6)
        return self.api.ticket_count(tenant, caller, rng.choice(caller.views), ids,
                                     rng.choice(ZONES), rng.random() < 0.3)


def warm_everything(api: Api, tenant: Tenant) -> list[str]:
    """Read every user's badge and every caller's counts (all filters, with and without the
    profile), so the rest of the stream lands on warm counters; returns any failures."""
    failures = []
    for user in USERS:
        response = api.call("GET", "/ticket/notification/count", tenant.id,
                            Caller(user, ("ticket_user",), (), ()))
        if response.status_code != 200:
            failures.append(f"badge {user}: {response.status_code}")
    for caller in CALLERS:
        for view in caller.views:
            for profile in (False, True):
                response = api.ticket_count(tenant, caller, view, list(tenant.filters), "UTC",
                                            profile)
                if response.status_code != 200:
                    failures.append(f"counts {caller.user}/{view}: {response.status_code}")
    return failures
