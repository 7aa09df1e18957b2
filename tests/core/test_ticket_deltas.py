"""The worker's ticket deltas skip what cannot make a delta, and give exactly what evaluating
every predicate on both rows of every change gives (seeded random filters, tickets and changes);
applied to Redis, they leave what a recount of the tickets gives."""
from __future__ import annotations

import random
from typing import Any, Mapping

import pytest

from tally.core.cells import CellDeltas
from tally.core.conditions import parse_definition
from tally.core.deltas import outbox_delta, ticket_deltas
from tally.core.predicates import Materialized, Predicate
from tally.core.visibility import ticket_buckets
from tally.stores import keys
from tally.stores.redis import encoder
from tally.stores.redis.counters import RedisCounters
from tests.support.randomdata import TAGS, TEAMS, USERS, principals, random_tickets
from tests.support.random_filters import definition

T = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
NOW = 1_760_000_000_000


def _leaf(field_name: str, op: str, value: Any) -> Predicate:
    if op == "contains":
        return lambda t: value in (t.get(field_name) or ())
    if op in ("is_null", "not_null"):
        want_null = op == "is_null"
        return lambda t: (t.get(field_name) is None) == want_null
    wanted = frozenset(value) if isinstance(value, (list, tuple)) else frozenset((value,))
    if op in ("eq", "in"):
        return lambda t: t.get(field_name) is not None and t.get(field_name) in wanted
    return lambda t: t.get(field_name) is None or t.get(field_name) not in wanted  # ne, not_in


def compile_predicate(obj: Mapping[str, Any]) -> Predicate:
    """The reference: condition JSON evaluated node by node (null semantics of §5)."""
    for mode, test in (("all", all), ("any", any)):
        if mode in obj:
            parts = tuple(compile_predicate(item) for item in obj[mode])
            return lambda t, parts=parts, test=test: test(p(t) for p in parts)
    return _leaf(obj["field"], obj["op"], obj.get("value"))


def random_mps(seed: int, n: int) -> list[Materialized]:
    rng = random.Random(seed)
    people = principals()
    mps = []
    for _ in range(n):
        timed = rng.random() < 0.4
        parsed = parse_definition(definition(rng, timed=timed))
        mps.append(Materialized.of(parsed, rng.choice(people)))
    return mps


def matches(mp: Materialized, row) -> bool:
    return row is not None and not row.get("deleted") and compile_predicate(mp.root)(row)


def reference_deltas(mp: Materialized, before, after) -> dict:
    """Net effect of one change on one MP, evaluating the predicate on both rows, always:
    (MP, bucket) -> n for a plain MP, (MP, bucket, member, score) -> n for a timed one."""
    net: dict = {}
    for row, sign in ((before, -1), (after, 1)):
        if not matches(mp, row):
            continue
        for bucket in ticket_buckets(row):
            if mp.score_field is None:
                slot = (mp.id, bucket)
            else:
                member = mp.member(row)
                if member is None:
                    continue
                slot = (mp.id, bucket, *member)
            net[slot] = net.get(slot, 0) + sign
    return {slot: n for slot, n in net.items() if n}


def net_of(*deltas: CellDeltas) -> dict:
    """The deltas summed in reference_deltas' terms."""
    net: dict = {}
    for cells in deltas:
        for cell, n in cells.plain.items():
            net[cell] = net.get(cell, 0) + n
        for cell, moves in cells.timed.items():
            for member, score, n in moves:
                slot = (*cell, member, score)
                net[slot] = net.get(slot, 0) + n
    return {slot: n for slot, n in net.items() if n}


def recount(mp: Materialized, rows, buckets) -> dict:
    """The MP's cells as a recount of the tickets gives them: per bucket, a count (plain MP) or
    members with their scores (timed MP)."""
    held: dict = {bucket: [] for bucket in buckets}
    for row in rows.values():
        if matches(mp, row):
            for bucket in ticket_buckets(row):
                held[bucket].append(row)
    if mp.score_field is None:
        return {bucket: len(found) for bucket, found in held.items()}
    return {bucket: dict(m for m in map(mp.member, found) if m is not None)
            for bucket, found in held.items()}


def random_changes(seed: int, n: int, fresh: float = 0.05) -> list[tuple]:
    """Creations, updates of one to three fields (bucket fields too), bare version bumps,
    deletions and resurrections; a `fresh` share of changes come without their before row."""
    rng = random.Random(seed)
    rows = {t["id"]: t for t in random_tickets(seed, 30, NOW)}
    changes = []
    for _ in range(n):
        ticket_id = rng.choice(sorted(rows))
        before = rows[ticket_id]
        after = dict(before, version=before["version"] + 1)
        roll = rng.random()
        if roll < 0.1:
            after["deleted"] = not before["deleted"]
        elif roll < 0.3:
            pass  # a bare version bump
        else:
            for name in rng.sample(("status", "priority", "teamId", "assigneeId", "requesterId",
                                    "tags", "isSupportRequest", "dueAt", "category"),
                                   rng.randint(1, 3)):
                after[name] = {"status": lambda: rng.choice(("open", "closed", "pending")),
                               "priority": lambda: rng.choice(("low", "high")),
                               "teamId": lambda: rng.choice(TEAMS + (None,)),
                               "assigneeId": lambda: rng.choice(USERS + (None,)),
                               "requesterId": lambda: rng.choice(USERS),
                               "tags": lambda: rng.sample(TAGS, rng.randint(0, 2)),
                               "isSupportRequest": lambda: not before["isSupportRequest"],
                               "dueAt": lambda: rng.choice((None, NOW + rng.randint(-9, 9))),
                               "category": lambda: rng.choice(("access", None))}[name]()
        rows[ticket_id] = after
        changes.append((None if rng.random() < fresh else before, after))
    return changes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_matchers_agree_with_the_evaluator(seed):
    tickets = random_tickets(seed, 80, NOW)
    for mp in random_mps(seed, 60):
        evaluator = compile_predicate(mp.root)
        assert [mp.matcher(t) for t in tickets] == [
            not t["deleted"] and evaluator(t) for t in tickets], mp.root


@pytest.mark.parametrize("seed", [4, 5])
def test_each_change_gives_what_evaluating_every_predicate_gives(seed):
    mps = random_mps(seed, 40)
    changes = random_changes(seed, 400)
    skipped = 0
    for before, after in changes:
        deltas = ticket_deltas(mps, [{"before": before, "after": after}])
        expected: dict = {}
        for mp in mps:
            expected.update(reference_deltas(mp, before, after))
        assert net_of(deltas) == expected
        # every listed cell changes (a cell a change leaves as it was is not listed)
        assert all(deltas.plain.values()) and all(deltas.timed.values())
        skipped += sum(1 for mp in mps if before and not reference_deltas(mp, before, after))
    assert skipped > 0


def test_a_row_of_changes_is_netted_per_cell_like_its_changes_one_by_one():
    mps = random_mps(6, 30)
    changes = [{"before": b, "after": a} for b, a in random_changes(6, 200)]
    merged = ticket_deltas(mps, changes)
    one_by_one = [ticket_deltas(mps, [change]) for change in changes]
    assert net_of(merged) == net_of(*one_by_one)
    # one entry per touched cell, including cells whose changes net to nothing
    assert merged.touched() == set().union(*(cells.touched() for cells in one_by_one))
    assert 0 in merged.plain.values() and [] in merged.timed.values()


@pytest.mark.parametrize("max_ops", [50, encoder.MAX_OPS_PER_CALL])
def test_rows_applied_in_any_order_leave_a_recount_of_the_tickets(raw, monkeypatch, max_ops):
    # Given warm cells holding a recount of 30 tickets on 30 plain and timed predicates
    mps = random_mps(7, 30)
    rows = {t["id"]: t for t in random_tickets(7, 30, NOW)}
    changes = random_changes(7, 300, fresh=0)
    buckets = {b for row in [*rows.values(), *(a for _, a in changes)]
               for b in ticket_buckets(row)}
    warm = raw.pipeline(transaction=False)
    for mp in mps:
        counts = keys.mp_counts_key(T, mp.id)
        for bucket, held in recount(mp, rows, buckets).items():
            if mp.score_field is None:
                warm.hset(counts, bucket, held)
            else:
                warm.hset(counts, f"z:{bucket}", 1)
                if held:
                    warm.zadd(keys.mp_zset_key(T, mp.id, bucket), held)
    warm.execute()
    # When rows of up to 60 changes are applied, shuffled, in calls of up to max_ops ops
    deltas = [outbox_delta(i, {"kind": "ticket", "at": 1, "changes": [
                  {"before": b, "after": a} for b, a in changes[start:start + 60]]}, mps)
              for i, start in enumerate(range(0, len(changes), 60))]
    random.Random(7).shuffle(deltas)
    assert len(encoder.encode(T, deltas, max_ops=max_ops)) > (1 if max_ops == 50 else 0)
    monkeypatch.setattr(encoder, "MAX_OPS_PER_CALL", max_ops)
    assert RedisCounters(raw).apply(T, deltas, now_ms=1).applied == len(deltas)
    # Then every cell holds a recount of the final tickets
    for _, after in changes:
        rows[after["id"]] = after
    for mp in mps:
        want = recount(mp, rows, buckets)
        if mp.score_field is None:
            got = {b: int(n) for b, n in raw.hgetall(keys.mp_counts_key(T, mp.id)).items()}
        else:
            read = raw.pipeline(transaction=False)
            for bucket in want:
                read.zrange(keys.mp_zset_key(T, mp.id, bucket), 0, -1, withscores=True)
                read.exists(keys.mp_negatives_key(T, mp.id, bucket))
            replies = read.execute()
            got = {b: {m: int(s) for m, s in members}
                   for b, members in zip(want, replies[0::2])}
            assert not any(replies[1::2]), mp.root  # no removal left waiting for its addition
        assert got == want, mp.root
