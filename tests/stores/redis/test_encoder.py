"""Outbox deltas as apply.lua calls: merged per event and group, cut into bounded calls, and
applied on a real redis-server exactly as the ops one by one would be."""
from __future__ import annotations

import json

import pytest

from tally.stores import keys

from tally.stores.redis import encoder as apply_calls
from tally.core.cells import GroupOps, Key, Op, OutboxDelta

T = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
HASH = keys.mp_counts_key(T, "mp1")
ZSET = keys.mp_zset_key(T, "mp1", "all")
NEG = Key(keys.mp_negatives_key(T, "mp1", "all"))


def plain(n: int, bucket: str = "all") -> GroupOps:
    return GroupOps(keys.cell_group("mp1", bucket), HASH, [Op("hincrby", HASH, (bucket, n))],
                    warm_field=bucket)


def move(member: str, score: int, n: int) -> GroupOps:
    return GroupOps(keys.cell_group("mp1", "z"), HASH, [Op("zmove", ZSET, (NEG, member, score, n))],
                    warm_field="z:all")


NAMES = {code: name for name, code in apply_calls.OP_CODES.items()}
WIDTH = {"hincrby": 4, "incrby": 3, "hmax": 4, "zmove": 6}  # an op's code, key and arguments


def body(call: apply_calls.ApplyCall) -> dict:
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
            read.append({"warm": warm, "field": warm_field, "snap": snap, "ops": ops})
        events.append({"id": event_id, "groups": read})
    return {**data, "events": events}


def ops_of(call: apply_calls.ApplyCall) -> list[list]:
    """Each op with its key indices replaced by key names."""
    named = []
    for event in body(call)["events"]:
        for group in event["groups"]:
            for name, key, *args in group["ops"]:
                if name == "zmove":
                    args[0] = call.keys[args[0] - 1]
                named.append([name, call.keys[key - 1], *args])
    return named


def test_the_ops_of_one_event_on_one_group_are_merged():
    # Given one event whose changes touch the same cells again and again
    delta = OutboxDelta(7, [plain(+1), plain(+1), plain(-1), plain(+1, "team:a"),
                            plain(-1, "team:a"), move("t-1:1", 10, -1), move("t-1:2", 20, +1),
                            move("t-1:2", 20, -1), move("t-1:3", 30, +1)])
    # When it is encoded
    [call] = apply_calls.encode(T, [delta])
    # Then each cell gets one op: sums, netted moves; a cell netting to nothing keeps its group
    groups = body(call)["events"][0]["groups"]
    assert len(groups) == 3
    assert ops_of(call) == [["hincrby", HASH, "all", 1],
                            ["zmove", ZSET, NEG, "t-1:1", 10, -1],
                            ["zmove", ZSET, NEG, "t-1:3", 30, 1]]


def test_moves_that_do_not_net_to_one_step_are_kept_as_given():
    delta = OutboxDelta(1, [move("m", 5, +1), move("m", 5, +1)])
    [call] = apply_calls.encode(T, [delta])
    assert ops_of(call) == [["zmove", ZSET, NEG, "m", 5, 1]] * 2


def test_events_are_never_merged_with_each_other_and_calls_stay_bounded():
    deltas = [OutboxDelta(i, [plain(+1), plain(+1, f"team:{i}")]) for i in range(1, 8)]
    calls = apply_calls.encode(T, deltas, [(keys.mp_version_key(T), "3")], max_ops=5)
    assert [c.outbox_ids for c in calls] == [[1, 2, 3], [4, 5, 6], [7]]
    for call in calls:
        data = body(call)
        assert data["guards"] == [[call.keys.index(keys.mp_version_key(T)) + 1, "3"]]
        assert call.keys[0] == keys.applied_key(T)
        assert len(call.keys) == len(set(call.keys))
        assert all(len(event["groups"]) == 2 for event in data["events"])


def test_no_delta_no_call():
    assert apply_calls.encode(T, []) == []


@pytest.fixture
def counters(services):
    return services.counters


@pytest.mark.parametrize("max_ops", [1, apply_calls.MAX_OPS_PER_CALL])
def test_split_merged_calls_count_like_the_ops_one_by_one(counters, raw, monkeypatch, max_ops):
    # Given warm cells and events whose changes add, remove and move members and counts
    raw.hset(HASH, mapping={"all": 10, "team:a": 4, "z:all": 0})
    raw.zadd(ZSET, {"t-1:1": 10})
    deltas = [OutboxDelta(1, [plain(+1), plain(+1), plain(-1, "team:a"), move("t-1:1", 10, -1),
                              move("t-1:2", 20, +1)]),
              OutboxDelta(2, [move("t-1:2", 20, -1), move("t-1:3", 30, +1), move("t-9:1", 5, -1),
                              plain(-1), plain(+1, "team:a")]),
              OutboxDelta(3, [move("t-9:1", 5, +1), plain(+1, "team:a")])]
    monkeypatch.setattr(apply_calls, "MAX_OPS_PER_CALL", max_ops)
    # When they are applied (in one call or one call per event), then applied again
    first = counters.apply(T, deltas, 1)
    again = counters.apply(T, deltas, 2)
    # Then the counters hold what the ops one by one give, once
    assert (first.applied, first.duplicates, again.applied, again.duplicates) == (3, 0, 0, 3)
    assert raw.hgetall(HASH) == {"all": "11", "team:a": "5", "z:all": "0"}
    assert raw.zrange(ZSET, 0, -1, withscores=True) == [("t-1:3", 30.0)]
    assert raw.hgetall(str(NEG)) == {}
