"""Invariant 3 on a Redis Cluster: a tenant's keys carry its hash tag, so they share one slot on
one master; scans and invalidation find them there; and what they cost in memory.

The memory test seeds a tenant (1,000 tickets, 200 notifications of 8 users), warms every badge
and the ticket counts of 14 callers over every system filter plus a custom one, and prints
MEMORY USAGE (SAMPLES 0: exact) per kind of key; docs/deployment.md quotes its numbers.
"""
from __future__ import annotations

import collections
import random
import uuid

import pytest

from tally.core.clock import epoch_ms, utc_now
from tally.services import maintenance
from tally.core.filters import SYSTEM_FILTERS
from tally.services import outbox
from tally.services.tenants import create_tenant
from tally.stores import keys
from tally.stores.redis.cluster import scan_tenant
from tests.support.tokens import REALM
from tests.support.randomdata import USERS, principals, random_tickets
from tests.support import events as b
from tests.support.tickets import post_events, upserted

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

COUNT = "/api/v2/ticketing/ticket/count?type={}&module=ticketing"
BADGE = "/api/v2/ticketing/ticket/notification/count"
CUSTOM = {"all": [{"field": "tags", "op": "contains", "value": "vip"},
                  {"field": "dueAt", "op": "within_next", "value": "4h"}]}


def every_key(cluster) -> dict[str, int]:
    """Every key of the cluster, with the port of the master holding it (KEYS on each master)."""
    found = {}
    for node in cluster.masters:
        client = cluster.node_client(node)
        try:
            if client.execute_command("ROLE")[0] == "master":
                found.update({key: node.port for key in client.keys("*")})
        finally:
            client.close()
    return found


def tenant_of(key: str) -> str:
    assert key.startswith(keys.PREFIX + ":{"), key
    return key[len(keys.PREFIX) + 2:].split("}", 1)[0]


def warm(app, headers, tenant: str, tickets: int, notifications: int, seed: int) -> str:
    """Ingest, apply and read a tenant's badges and ticket counts; returns the custom filter id."""
    client, svc = app.test_client(), app.extensions["tally"]
    rng, now = random.Random(seed), epoch_ms(utc_now())
    service = headers(user="svc", roles=("ticket_service",), tenant=tenant)
    events = [upserted(dict(t, id=str(uuid.UUID(int=rng.getrandbits(128)))))  # real-sized ids
              for t in random_tickets(seed, tickets, now)]
    events += [b.created(f"n-{i}", rng.choice(USERS), rng.choice(("comment", "mention")),
                         rng.choice(("high", "low"))) for i in range(notifications)]
    post_events(client, service, events)
    made = client.post("/api/v2/ticketing/filters", json={"name": "vip due", "shared": True,
                                                          "conditions": CUSTOM},
                       headers=headers(user="boss", roles=("ticket_admin",), tenant=tenant))
    assert made.status_code == 201, made.get_json()
    custom = made.get_json()["data"]["id"]
    outbox.apply_pending(svc, tenant)
    for user in USERS:
        assert client.get(BADGE, headers=headers(user=user, tenant=tenant)).status_code == 200
    ids = [spec.id for spec in SYSTEM_FILTERS] + [custom]
    for caller in principals():
        view = "agent" if caller.has_any("ticket_agent", "ticket_admin") else "user"
        answer = client.post(COUNT.format(view), json={"filterIds": ids},
                             headers=headers(user=caller.user_id, roles=caller.roles,
                                             teams=caller.teams, tenant=tenant))
        assert answer.status_code == 200, answer.get_json()
    return custom


def test_a_tenants_keys_share_its_slot_and_scans_and_invalidation_find_them(
        app, headers, tenant_id, redis_cluster):
    svc = app.extensions["tally"]
    other = str(uuid.uuid4())
    create_tenant(svc.db, other, "Other tenant", REALM)
    # Given two tenants with warm badges and ticket cells (a custom filter among them)
    custom = warm(app, headers, tenant_id, 120, 40, seed=5)
    warm(app, headers, other, 60, 20, seed=6)

    # Then every key carries a tenant's tag and sits on the master owning that tenant's slot
    found = every_key(redis_cluster)
    cluster = svc.counters.client.cluster
    by_tenant = collections.defaultdict(set)
    for key, port in found.items():
        tenant = tenant_of(key)
        assert cluster.keyslot(key) == cluster.keyslot(keys.tenant_prefix(tenant)), key
        assert cluster.get_node_from_key(key).port == port, key
        by_tenant[tenant].add(key)
    assert set(by_tenant) == {tenant_id, other}
    mine = by_tenant[tenant_id]
    assert len(mine) > 50
    # ... and a scan of the tenant (on its master only) returns exactly its keys
    assert set(scan_tenant(svc.counters.client, tenant_id)) == mine

    # When one filter is invalidated
    custom_mps = svc.ticket_counters.filter_mps(tenant_id, custom)
    assert custom_mps and maintenance.invalidate(svc, tenant_id, filter_id=custom) > 0
    # Then its MPs' keys are gone from the tenant's master
    left = set(every_key(redis_cluster))
    assert left < set(found)
    assert not {key for key in left if keys.mp_of_key(tenant_id, key) in custom_mps}
    # When the whole tenant is invalidated: only its dedupe set, registry version and applied
    # watermark are kept (the groups it drops are rebuilt from SQL), and the other tenant's keys
    # are untouched
    assert maintenance.invalidate(svc, tenant_id) > 0
    left = set(every_key(redis_cluster))
    assert {key for key in left if tenant_of(key) == tenant_id} == {
        keys.applied_key(tenant_id), keys.mp_version_key(tenant_id), keys.watermark_key(tenant_id)}
    assert {key for key in left if tenant_of(key) == other} == by_tenant[other]


def kind_of(tenant: str, key: str) -> str:
    return key.removeprefix(keys.tenant_prefix(tenant)).split(":", 1)[0]


def test_memory_of_a_seeded_tenant_by_kind_of_key(app, headers, tenant_id, capsys):
    svc = app.extensions["tally"]
    client = svc.counters.client
    # Given a tenant of 1,000 tickets and 200 notifications, every badge and count warm
    warm(app, headers, tenant_id, 1000, 200, seed=11)
    tenant_keys = list(scan_tenant(client, tenant_id))

    # When each key's memory is measured exactly
    usage: dict[str, int] = collections.Counter()
    count: dict[str, int] = collections.Counter()
    members: dict[str, int] = collections.Counter()
    for key in tenant_keys:
        kind = kind_of(tenant_id, key)
        usage[kind] += client.memory_usage(key, samples=0)
        count[kind] += 1
        members[kind] += {"zset": client.zcard, "hash": client.hlen, "set": client.scard}.get(
            client.type(key), lambda _key: 1)(key)

    # Then every key is one of keys.py's kinds, and the report adds up
    assert set(usage) <= {"ncount", "applied", "mpreg", "mpver", "mpreach", "mpread", "mp", "mpz",
                          "mpn", "mpp", "fmps", "snap", "lock", "wm"}, set(usage)
    total = sum(usage.values())
    registered = len(svc.ticket_counters.registry(tenant_id).mps)
    assert total > 0 and count["ncount"] == len(USERS) and registered > 0
    lines = [f"  {kind:7} {count[kind]:5} keys {members[kind]:7} entries {usage[kind]:9} B"
             f" ({usage[kind] / max(members[kind], 1):.0f} B/entry)" for kind in sorted(usage)]
    with capsys.disabled():
        print(f"\nmemory of one tenant (1000 tickets, 200 notifications, {len(USERS)} users, "
              f"{registered} MPs from {len(SYSTEM_FILTERS) + 1} filters x 14 callers): "
              f"{total} B in {len(tenant_keys)} keys\n" + "\n".join(lines))
