"""trim.lua against apply.lua and reads on a real redis-server, interleaved in every order.

Each trim and each apply is one atomic script, so "concurrent" means any interleaving of them:
every order of a ticket history's events, with two trims (rising cutoffs) at every pair of
positions, must end in the same cell: the same members above the cutoff, the same floor, no
pending removal.
"""
from __future__ import annotations

import itertools
import uuid

import pytest

from tally.core.cells import TRIM_MARGIN_MS, UNTRIMMED, Cell, CellDeltas, OutboxDelta
from tally.core.filters import SYSTEM_BY_ID
from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.services.container import build_caches
from tally.stores import keys
from tally.stores.redis.cells import Sums, TicketCounters
from tally.stores.redis.counters import RedisCounters

H = 3_600_000
ADMIN = Principal("boss", "tenant", "realm", frozenset({"ticket_admin"}))
TIMED = Materialized.of(SYSTEM_BY_ID["7440"].definition, ADMIN)  # Overdue: scored by dueAt
CELL = Cell(TIMED, "all")
# Trims at these instants fold below 80 h, then below 100 h (the MP's recorded reach is 0).
FIRST, SECOND = 80 * H + TRIM_MARGIN_MS, 100 * H + TRIM_MARGIN_MS

# A history of five tickets (member "<ticket>:<version>", score, ±1), one outbox row per entry:
HISTORY = [
    # created: t1 and t4 below both cutoffs, t3 between them, t2 above
    [("t1:1", 50 * H, 1), ("t2:1", 150 * H, 1), ("t3:1", 90 * H, 1), ("t4:1", 40 * H, 1)],
    # t1 leaves the predicate (closed); t2's due date moves back below the cutoffs; t3 moves
    # within the folded range; t4's due date moves forward, back into reach
    [("t1:1", 50 * H, -1), ("t2:1", 150 * H, -1), ("t2:2", 60 * H, 1), ("t3:1", 90 * H, -1),
     ("t3:2", 95 * H, 1), ("t4:1", 40 * H, -1), ("t4:2", 130 * H, 1)],
    # t2 is deleted; t5 is created, long overdue
    [("t2:2", 60 * H, -1), ("t5:1", 70 * H, 1)],
    # t3's due date moves forward, above both cutoffs
    [("t3:2", 95 * H, -1), ("t3:3", 110 * H, 1)],
]
KEPT = {"t3:3": 110 * H, "t4:2": 130 * H}  # live members at or above the last cutoff
FLOOR = 1  # t5:1


@pytest.fixture
def store(raw):
    """A fresh tenant with the cell warm and untrimmed, and the MP's reach recorded as 0."""
    tenant = str(uuid.uuid4())
    raw.hset(keys.mp_counts_key(tenant, TIMED.id), "z:all", UNTRIMMED)
    raw.hset(keys.mp_reach_key(tenant), TIMED.id, 0)
    return tenant, RedisCounters(raw), TicketCounters(RedisCounters(raw), build_caches({}).specs)


def apply(counters, tenant, outbox_id, moves):
    delta = OutboxDelta(outbox_id, cells=CellDeltas(timed={CELL.id: list(moves)}))
    assert counters.apply(tenant, [delta], now_ms=1).applied == 1


def interleavings():
    for order in itertools.permutations(range(len(HISTORY))):
        for first, second in itertools.combinations_with_replacement(range(len(HISTORY) + 1), 2):
            yield order, first, second


@pytest.mark.parametrize("order,first,second", list(interleavings()))
def test_any_interleaving_of_applies_and_trims_ends_in_the_same_cell(store, order, first,
                                                                     second):
    tenant, counters, cells = store
    trims = {first: [FIRST], second: [SECOND]} if first != second else {first: [FIRST, SECOND]}
    for position in range(len(HISTORY) + 1):
        for now in trims.get(position, []):
            assert cells.trim(tenant, [CELL], now)[0] >= 0
        if position < len(HISTORY):
            apply(counters, tenant, order[position] + 1, HISTORY[order[position]])
    value = cells.cell_value(tenant, CELL)
    assert (value.members, value.floor, value.negatives, value.cutoff) == (
        KEPT, FLOOR, {}, 100 * H)


def test_a_trim_folds_what_lies_below_the_cutoff_once_and_the_cutoff_only_rises(store):
    tenant, counters, cells = store
    for outbox_id, moves in enumerate(HISTORY[:1], 1):
        apply(counters, tenant, outbox_id, moves)
    assert cells.trim(tenant, [CELL], SECOND) == [3]  # t1:1, t3:1, t4:1
    assert cells.trim(tenant, [CELL], SECOND) == [0]
    assert cells.trim(tenant, [CELL], FIRST) == [0]  # a lower cutoff leaves the cell alone
    value = cells.cell_value(tenant, CELL)
    assert (value.members, value.floor, value.cutoff) == ({"t2:1": 150 * H}, 3, 100 * H)


def test_reads_answer_windows_above_the_cutoff_and_find_the_others_cold(store):
    tenant, counters, cells = store
    for outbox_id, moves in enumerate(HISTORY, 1):
        apply(counters, tenant, outbox_id, moves)
    assert cells.trim(tenant, [CELL], SECOND) == [1]  # t5:1
    sums = Sums.of(tenant, [(TIMED, (("all", 1),))])
    inf = float("-inf")
    # before now: floor + members below now; windows with lo at or above the cutoff: members
    assert cells.read_sums(sums, [(inf, 200 * H)], 300 * H).sums == [3]
    assert cells.read_sums(sums, [(inf, 100 * H)], 300 * H).sums == [1]  # hi == cutoff: floor
    assert cells.read_sums(sums, [(100 * H, 120 * H)], 300 * H).sums == [1]
    assert cells.read_sums(sums, [(110 * H, 110 * H + 1)], 300 * H).sums == [1]
    # a window reaching below the cutoff cannot be answered from the cell: cold, never wrong
    assert cells.read_sums(sums, [(100 * H - 1, 200 * H)], 300 * H) == [CELL]
    assert cells.read_sums(sums, [(inf, 100 * H - 1)], 300 * H) == [CELL]


def test_a_trim_is_refused_while_rebuilt_and_skips_cold_or_unreached_cells(store, raw):
    tenant, counters, cells = store
    apply(counters, tenant, 1, HISTORY[0])
    token = counters.begin_rebuild(tenant, keys.cell_group(*CELL.id))
    assert cells.trim(tenant, [CELL], SECOND) == [-1]
    assert cells.cell_value(tenant, CELL).floor == 0
    counters.abort_rebuild(tenant, keys.cell_group(*CELL.id), token)
    raw.hdel(keys.mp_reach_key(tenant), TIMED.id)
    assert cells.trim(tenant, [CELL], SECOND) == [-2]  # no reach recorded: nothing may fold
    assert cells.trim(tenant, [Cell(TIMED, "team:t9")], SECOND) == [-2]  # cold
    assert cells.cell_value(tenant, CELL).floor == 0
