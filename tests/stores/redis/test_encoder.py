"""Outbox deltas as apply.lua calls: one entry per touched cell, cut into bounded calls, and
applied on a real redis-server as the deltas say."""
from __future__ import annotations

import json

import pytest

from tally.core.cells import CellDeltas, NotificationDelta, OutboxDelta
from tally.stores import keys
from tally.services.container import build_caches
from tally.stores.redis import encoder

T = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
HASH = keys.mp_counts_key(T, "mp1")  # a plain MP's counts
TIMED = keys.mp_counts_key(T, "mp2")  # a timed MP's warm markers
ZSET = keys.mp_zset_key(T, "mp2", "all")
NEG = keys.mp_negatives_key(T, "mp2", "all")

NAMES = {encoder.HINCRBY: "hincrby", encoder.HMAX: "hmax", encoder.ZMOVE: "zmove"}
WIDTH = {"hincrby": 4, "hmax": 4, "zmove": 6}  # an op's code, key and arguments


def cells(plain=None, timed=None) -> CellDeltas:
    return CellDeltas({("mp1", b): n for b, n in (plain or {}).items()},
                      {("mp2", b): moves for b, moves in (timed or {}).items()})


def body(call: encoder.ApplyCall) -> dict:
    """The call's flat JSON body read back into events, groups and ops, as apply.lua reads it."""
    data = json.loads(call.body)
    events = []
    for event_id, *groups in data["events"]:
        read = []
        for warm, warm_field, snap, *flat in groups:
            ops = []
            while flat:
                name = NAMES[flat[0]]
                ops.append([name, *flat[1:WIDTH[name]]])
                flat = flat[WIDTH[name]:]
            read.append({"warm": call.keys[warm - 1], "field": warm_field,
                         "snap": call.keys[snap - 1], "ops": ops})
        events.append({"id": event_id, "groups": read})
    return {**data, "events": events}


def ops_of(call: encoder.ApplyCall) -> list[list]:
    """Each op with its key indices replaced by key names."""
    named = []
    for event in body(call)["events"]:
        for group in event["groups"]:
            for name, key, *args in group["ops"]:
                if name == "zmove":
                    args[0] = call.keys[args[0] - 1]
                named.append([name, call.keys[key - 1], *args])
    return named


def test_each_touched_cell_is_one_group_entry():
    # Given a ticket row touching three cells, one of them netting to nothing
    delta = OutboxDelta(7, cells=cells({"all": 1, "team:a": 0},
                                       {"all": [("t-1:1", 10, -1), ("t-1:3", 30, 1)]}))
    # When it is encoded
    [call] = encoder.encode(T, [delta])
    # Then each cell is one entry, warm by its field and skipped by its own snapshot set
    groups = body(call)["events"][0]["groups"]
    assert [(g["warm"], g["field"], g["snap"]) for g in groups] == [
        (HASH, "all", keys.group_snapshot_key(T, keys.cell_group("mp1", "all"))),
        (HASH, "team:a", keys.group_snapshot_key(T, keys.cell_group("mp1", "team:a"))),
        (TIMED, "z:all", keys.group_snapshot_key(T, keys.cell_group("mp2", "all")))]
    assert ops_of(call) == [["hincrby", HASH, "all", 1],
                            ["zmove", ZSET, NEG, "t-1:1", 10, -1],
                            ["zmove", ZSET, NEG, "t-1:3", 30, 1]]
    locks = [call.keys[i - 1] for i in body(call)["locks"]]
    assert locks == [keys.group_lock_key(T, keys.cell_group(mp, b))
                     for mp, b in (("mp1", "all"), ("mp1", "team:a"), ("mp2", "all"))]


def test_a_notification_row_is_one_entry_on_the_users_hash():
    delta = OutboxDelta(3, notification=NotificationDelta("u1", {"total": 1, "t:comment": 1}, 77))
    [call] = encoder.encode(T, [delta])
    counts = keys.notification_counts_key(T, "u1")
    [group] = body(call)["events"][0]["groups"]
    assert (group["warm"], group["field"]) == (counts, False)
    assert group["snap"] == keys.group_snapshot_key(T, keys.notification_group("u1"))
    assert ops_of(call) == [["hincrby", counts, "total", 1], ["hincrby", counts, "t:comment", 1],
                            ["hmax", counts, "lu", 77]]


def test_events_are_never_merged_with_each_other_and_calls_stay_bounded():
    deltas = [OutboxDelta(i, cells=cells({"all": 1, f"team:{i}": 1})) for i in range(1, 8)]
    calls = encoder.encode(T, deltas, [(keys.mp_version_key(T), "3")], max_ops=5)
    assert [c.outbox_ids for c in calls] == [[1, 2, 3], [4, 5, 6], [7]]
    for call in calls:
        data = body(call)
        assert data["guards"] == [[call.keys.index(keys.mp_version_key(T)) + 1, "3"]]
        assert call.keys[0] == keys.applied_key(T)
        assert len(call.keys) == len(set(call.keys))
        assert all(len(event["groups"]) == 2 for event in data["events"])


def test_no_delta_no_call():
    assert encoder.encode(T, []) == []


@pytest.fixture
def counters(services):
    return services.counters


@pytest.mark.parametrize("max_ops", [1, encoder.MAX_OPS_PER_CALL])
def test_split_calls_count_like_one_call(counters, raw, monkeypatch, max_ops):
    # Given warm cells and events whose changes add, remove and move members and counts
    raw.hset(HASH, mapping={"all": 10, "team:a": 4})
    raw.hset(TIMED, "z:all", 0)
    raw.zadd(ZSET, {"t-1:1": 10})
    deltas = [OutboxDelta(1, cells=cells({"all": 2, "team:a": -1},
                                         {"all": [("t-1:1", 10, -1), ("t-1:2", 20, 1)]})),
              OutboxDelta(2, cells=cells({"all": -1, "team:a": 1},
                                         {"all": [("t-1:2", 20, -1), ("t-1:3", 30, 1),
                                                  ("t-9:1", 5, -1)]})),
              OutboxDelta(3, cells=cells({"team:a": 1}, {"all": [("t-9:1", 5, 1)]}))]
    monkeypatch.setattr(encoder, "MAX_OPS_PER_CALL", max_ops)
    # When they are applied (in one call or one call per event), then applied again
    first = counters.apply(T, deltas, 1)
    again = counters.apply(T, deltas, 2)
    # Then the counters hold what the deltas say, once
    assert (first.applied, first.duplicates, again.applied, again.duplicates) == (3, 0, 0, 3)
    assert raw.hgetall(HASH) == {"all": "11", "team:a": "5"}
    assert raw.zrange(ZSET, 0, -1, withscores=True) == [("t-1:3", 30.0)]
    assert raw.hgetall(NEG) == {}


def test_the_cell_keys_cache_stays_at_its_bound_and_names_the_same_keys():
    """Many distinct cells through a small `cell_keys` cache: it holds its size, never more,
    and the calls are exactly those encoded without it."""
    memo = build_caches({"cell_keys": 32}).cell_keys
    deltas = [OutboxDelta(n, cells=CellDeltas(
        {(f"mp{n % 7}", f"team:{n}"): 1},
        {(f"mp{n % 5}", f"team:{n}"): [(f"t{n}:1", 1_700_000_000_000 + n, 1)]}))
        for n in range(500)]
    for part in (deltas, deltas[-10:], deltas):
        with_memo = encoder.encode(T, part, max_ops=40, cell_keys=memo)
        assert len(memo) <= 32
        assert [(c.keys, c.body) for c in with_memo] == [
            (c.keys, c.body) for c in encoder.encode(T, part, max_ops=40)]
    assert len(memo) == 32
