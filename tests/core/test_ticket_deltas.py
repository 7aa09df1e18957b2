"""The worker's ticket deltas skip what cannot make an op, and give exactly what evaluating every
predicate on both rows of every change gives (seeded random filters, tickets and changes)."""
from __future__ import annotations

import random
from typing import Any, Mapping

import pytest

from tally.core.conditions import parse_definition
from tally.core.predicates import Materialized, Predicate
from tally.core.visibility import ticket_buckets
from tally.core.ticket_deltas import cell_groups, ticket_change_ops, ticket_rows_cells
from tally.stores import keys
from tally.stores.redis import encoder as apply_calls
from tally.core.cells import OutboxDelta
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


def reference_ops(mp: Materialized, before, after) -> dict:
    """Net effect of one change on one MP, evaluating the predicate on both rows, always."""
    net: dict = {}
    for row, sign in ((before, -1), (after, 1)):
        if row is None or row.get("deleted") or not compile_predicate(mp.root)(row):
            continue
        for bucket in ticket_buckets(row):
            if mp.score_field is None:
                slot = ("hincrby", keys.mp_counts_key(T, mp.id), bucket)
            else:
                member = mp.member(row)
                if member is None:
                    continue
                slot = ("zmove", keys.mp_zset_key(T, mp.id, bucket), *member)
            net[slot] = net.get(slot, 0) + sign
    return {slot: n for slot, n in net.items() if n}


def net_of(groups) -> dict:
    net: dict = {}
    for group in groups:
        for op in group.ops:
            slot = (("hincrby", op.key, op.args[0]) if op.name == "hincrby"
                    else ("zmove", op.key, op.args[1], op.args[2]))
            n = op.args[1] if op.name == "hincrby" else op.args[3]
            net[slot] = net.get(slot, 0) + n
    return {slot: n for slot, n in net.items() if n}


def random_changes(seed: int, n: int) -> list[tuple]:
    """Creations, updates of one to three fields (bucket fields too), bare version bumps,
    deletions and resurrections."""
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
        changes.append((None if rng.random() < 0.05 else before, after))
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
        groups = ticket_change_ops(T, mps, before, after)
        expected: dict = {}
        for mp in mps:
            expected.update(reference_ops(mp, before, after))
        assert net_of(groups) == expected
        # every group makes an op (a cell a change leaves as it was gets none)
        assert all(group.ops for group in groups)
        skipped += sum(1 for mp in mps if before and not reference_ops(mp, before, after))
    assert skipped > 0


def test_a_row_of_changes_is_merged_per_cell_like_its_changes_one_by_one():
    mps = random_mps(6, 30)
    changes = random_changes(6, 200)
    merged = cell_groups(T, ticket_rows_cells(T, mps, [{"before": b, "after": a}
                                                       for b, a in changes]))
    one_by_one = [g for b, a in changes for g in ticket_change_ops(T, mps, b, a)]
    assert net_of(merged) == net_of(one_by_one)
    # one group per touched cell, including cells whose changes net to nothing
    assert sorted(g.group for g in merged) == sorted({g.group for g in one_by_one})


@pytest.mark.parametrize("max_ops", [50, apply_calls.MAX_OPS_PER_CALL])
def test_cells_are_encoded_exactly_as_their_groups_would_be(max_ops):
    # Given rows of random changes on plain and timed predicates, plus a notification row
    mps = random_mps(7, 30)
    changes = random_changes(7, 300)
    rows = [ticket_rows_cells(T, mps, [{"before": b, "after": a} for b, a in changes[i:i + 60]])
            for i in range(0, len(changes), 60)]
    assert any(cells.timed for cells in rows) and any(cells.plain for cells in rows)
    assert any(0 in cells.plain.values() for cells in rows)  # touched cells netting to nothing
    guards = [(keys.mp_version_key(T), "4")]
    # When they are encoded straight from the cells, and from their GroupOps form
    direct = apply_calls.encode(T, [OutboxDelta(i, [], cells) for i, cells in enumerate(rows)],
                                guards, max_ops)
    grouped = apply_calls.encode(T, [OutboxDelta(i, cell_groups(T, cells))
                                     for i, cells in enumerate(rows)], guards, max_ops)
    # Then the calls are the same: keys, bodies and the events each carries
    assert len(direct) > (1 if max_ops == 50 else 0)
    assert direct == grouped
