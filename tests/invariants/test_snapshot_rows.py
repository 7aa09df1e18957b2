"""Regression: an outbox row a rebuild already counted is skipped for every change it holds.

A ticket outbox row holds many changes, so its delta can list one cell several times. apply.lua
used to ask the cell's snapshot set once per entry: the first entry removed the id and was
skipped, the next ones found it gone and were applied, counting the row again (the chaos suite
found it as drift in busy cells such as `all` whenever a cold read installed a cell while rows were
pending).
"""
from __future__ import annotations

import uuid

import pytest

from tally.services.outbox import apply_pending
from tally.stores import keys
from tally.core.cells import GroupOps, Install, Op, OutboxDelta
from tally.stores.redis.counters import RedisCounters
from tests.support.tickets import ask, only_mp, values, warm_world
from tests.support import events as b

pytestmark = pytest.mark.both_databases

T = str(uuid.uuid4())


def twice(outbox_id: int, key: str) -> OutboxDelta:
    """One row whose two changes both add to group g1 (two entries for the same group)."""
    return OutboxDelta(outbox_id, [GroupOps("g1", key, [Op("hincrby", key, ("n", 1))])
                                   for _ in range(2)])


def test_a_counted_row_is_skipped_for_every_entry_of_its_group(raw):
    counters, key = RedisCounters(raw), keys.tenant_prefix(T) + "h"
    token = counters.begin_rebuild(T, "g1")
    # The rebuild's snapshot already counted row 1 (both of its changes): n = 2
    assert counters.install(T, token, Install("g1", [Op("hset", key, ("n", 2))], [1]))
    counters.apply(T, [twice(1, key)], now_ms=1)
    assert raw.hget(key, "n") == "2"
    # ... while a row the snapshot did not count adds both of its changes
    counters.apply(T, [twice(2, key)], now_ms=2)
    assert raw.hget(key, "n") == "4"


def test_a_cold_read_while_a_multi_ticket_row_is_pending_counts_it_once(app, client, headers,
                                                                        tenant_id, raw):
    # Given warm cells, and one pending row with two new tickets in the same cells
    services, _ = warm_world(app, client, headers, tenant_id, n=20)
    service = headers(user="svc", roles=("ticket_service",))
    batch = [b.ticket(f"new-{i}", 1, status="open", priority="critical") for i in range(2)]
    assert client.post(b.EVENTS, json={"events": batch}, headers=service).status_code == 202
    # When the counters are emptied and read cold before the worker applies the row
    raw.flushall()
    cold = ask(client, headers)
    apply_pending(services, tenant_id)
    # Then the warm cells hold the row once: the same answers as a fresh cold read
    warm = ask(client, headers)
    assert {source for source, _ in warm} == {"cache"}
    assert values(warm) == values(cold)
    plain = only_mp(raw, tenant_id, "3745")
    assert raw.exists(keys.mp_counts_key(tenant_id, plain))
    raw.flushall()
    assert values(ask(client, headers)) == values(cold)
