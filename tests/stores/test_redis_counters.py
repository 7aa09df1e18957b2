"""The apply and install scripts on a real redis-server: once-only, all-or-nothing, commuting."""
from __future__ import annotations

import itertools
import uuid

import pytest
import redis

from tally.errors import GuardChanged, RebuildBusy, StoreUnavailable
from tally.stores import keys
from tally.stores.base import GroupOps, Install, Key, Op, OutboxDelta
from tally.stores.redis_counters import RedisCounters

T = str(uuid.uuid4())


@pytest.fixture
def client(redis_url):
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def counters(client):
    return RedisCounters(client)


def bump(outbox_id: int, group: str = "g1", key: str | None = None, n: int = 1, **extra):
    key = key or keys.tenant_prefix(T) + "h"
    return OutboxDelta(outbox_id, [GroupOps(group, extra.pop("warm", key),
                                            [Op("hincrby", key, ("n", n))], **extra)])


def warm_hash(client, field="n", value=0):
    client.hset(keys.tenant_prefix(T) + "h", field, value)


def test_each_outbox_id_is_applied_once(counters, client):
    warm_hash(client)
    first = counters.apply(T, [bump(1), bump(2)], now_ms=1)
    again = counters.apply(T, [bump(2), bump(3)], now_ms=2)
    assert (first.applied, first.duplicates) == (2, 0)
    assert (again.applied, again.duplicates) == (1, 1)
    assert client.hget(keys.tenant_prefix(T) + "h", "n") == "3"


def test_cold_group_is_skipped_but_the_event_is_marked_applied(counters, client):
    result = counters.apply(T, [bump(1)], now_ms=1)
    assert result.applied == 1
    assert not client.exists(keys.tenant_prefix(T) + "h")
    assert client.zscore(keys.applied_key(T), "1") == 1


def test_warm_field_gates_one_cell_of_a_hash(counters, client):
    key = keys.tenant_prefix(T) + "cells"
    client.hset(key, "a", 5)
    counters.apply(T, [OutboxDelta(1, [
        GroupOps("ca", key, [Op("hincrby", key, ("a", 1))], warm_field="a"),
        GroupOps("cb", key, [Op("hincrby", key, ("b", 1))], warm_field="b")])], now_ms=1)
    assert client.hgetall(key) == {"a": "6"}


def test_rebuild_marker_refuses_the_whole_batch(counters, client):
    warm_hash(client)
    token = counters.begin_rebuild(T, "g2")
    assert token
    with pytest.raises(RebuildBusy):
        counters.apply(T, [bump(1, "g1"), bump(2, "g2")], now_ms=1)
    assert client.hget(keys.tenant_prefix(T) + "h", "n") == "0"
    assert not client.exists(keys.applied_key(T))
    assert counters.begin_rebuild(T, "g2") is None  # one rebuild at a time


def test_guard_mismatch_refuses_the_batch(counters, client):
    warm_hash(client)
    version = keys.tenant_prefix(T) + "ver"
    client.set(version, "7")
    with pytest.raises(GuardChanged):
        counters.apply(T, [bump(1)], now_ms=1, guards=[(version, "6")])
    assert counters.apply(T, [bump(1)], now_ms=1, guards=[(version, "7")]).applied == 1
    assert client.hget(keys.tenant_prefix(T) + "h", "n") == "1"


def test_install_counts_snapshot_ids_once_and_clears_the_marker(counters, client):
    key = keys.tenant_prefix(T) + "h"
    counters.apply(T, [bump(1)], now_ms=1)  # cold: skipped, marked applied
    token = counters.begin_rebuild(T, "g1")
    # The snapshot counted outbox rows 1 (already applied) and 2 (not yet applied).
    assert counters.install(T, token, Install("g1", [Op("hset", key, ("n", 2))], [1, 2]))
    assert client.smembers(keys.group_snapshot_key(T, "g1")) == {"2"}
    assert not client.exists(keys.group_lock_key(T, "g1"))
    counters.apply(T, [bump(2), bump(3)], now_ms=2)
    assert client.hget(key, "n") == "3"  # 2 was in the snapshot; only 3 adds


def test_install_with_a_lost_marker_writes_nothing(counters, client):
    key = keys.tenant_prefix(T) + "h"
    token = counters.begin_rebuild(T, "g1")
    client.delete(keys.group_lock_key(T, "g1"))  # expired
    assert not counters.install(T, token, Install("g1", [Op("hset", key, ("n", 9))], []))
    assert not client.exists(key)


def zmoves(outbox_id, moves):
    zset, negatives = keys.tenant_prefix(T) + "z", keys.tenant_prefix(T) + "zn"
    ops = [Op("zmove", zset, (Key(negatives), member, score, delta))
           for member, score, delta in moves]
    return OutboxDelta(outbox_id, [GroupOps("z", keys.tenant_prefix(T) + "zw", ops)])


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_zmoves_commute_in_any_order(counters, client, order):
    client.set(keys.tenant_prefix(T) + "zw", 1)
    history = [zmoves(1, [("t:1", 10, 1)]),                      # created at v1
               zmoves(2, [("t:1", 10, -1), ("t:2", 20, 1)]),     # v1 -> v2
               zmoves(3, [("t:2", 20, -1), ("t:3", 30, 1)])]     # v2 -> v3
    for i in order:
        counters.apply(T, [history[i]], now_ms=1)
    assert client.zrange(keys.tenant_prefix(T) + "z", 0, -1, withscores=True) == [("t:3", 30.0)]
    assert not client.exists(keys.tenant_prefix(T) + "zn")


def test_a_dead_redis_raises_store_unavailable():
    dead = RedisCounters(redis.Redis(port=1, socket_connect_timeout=0.2, decode_responses=True))
    with pytest.raises(StoreUnavailable):
        dead.read_notifications(T, "u1")
