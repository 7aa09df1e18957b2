"""The arithmetic of trimming timed cells: how far each window reaches, cutoffs, folding."""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from tally.core.cells import TRIM_MARGIN_MS, UNTRIMMED, fold, trim_cutoff
from tally.core.conditions import NEG_INF, TimeCondition, parse_definition
from tally.core.filters import SYSTEM_BY_ID
from tally.core.model import OPEN_STATUSES, Principal
from tally.core.plans import compile_count
from tally.core.predicates import Materialized
from tally.core.visibility import scope

H, DAY = 3_600_000, 86_400_000
NOW = int(datetime(2026, 3, 8, 15, 30, 12, tzinfo=timezone.utc).timestamp() * 1000)
ZONES = ("UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Pacific/Chatham", "Asia/Calcutta",
         "America/New_York", "Europe/London", "Australia/Lord_Howe")
KINDS = [TimeCondition("dueAt", "today"), TimeCondition("dueAt", "before_now"),
         TimeCondition("dueAt", "within_next", 3600),
         TimeCondition("createdAt", "within_last", 7 * 86400),
         TimeCondition("createdAt", "older_than", 30 * 86400)]


def lowest(window: tuple[float, float]) -> float:
    """The lowest bound a window needs whole: lo, or hi when lo is -inf (the floor has the
    rest)."""
    lo, hi = window
    return hi if lo == NEG_INF else lo


@pytest.mark.parametrize("condition", KINDS, ids=lambda c: c.kind)
def test_no_window_reaches_below_now_minus_its_reach_in_any_zone(condition):
    rng = random.Random(3)
    for _ in range(2000):  # across DST changes of every zone through 2026-2027
        now = NOW + rng.randint(-400 * DAY, 400 * DAY)
        for zone in ZONES:
            assert lowest(condition.window(now, zone)) >= now - condition.reach_ms


def test_reach_per_kind():
    assert [c.reach_ms for c in KINDS] == [2 * DAY, 0, 0, 7 * DAY, 30 * DAY]


def test_a_cutoff_leaves_the_reach_and_a_margin_and_no_reach_folds_nothing():
    assert trim_cutoff(NOW, 7 * DAY) == NOW - 7 * DAY - TRIM_MARGIN_MS
    assert trim_cutoff(NOW, 0) == NOW - TRIM_MARGIN_MS
    assert trim_cutoff(NOW, None) == UNTRIMMED
    assert UNTRIMMED < -(10 ** 15) and float(UNTRIMMED) == UNTRIMMED  # exact in Lua's doubles


def test_fold_keeps_members_at_or_above_the_cutoff_and_counts_the_rest():
    members = {"a:1": 99, "b:1": 100, "c:2": 101, "d:1": -5}
    assert fold(members, 100) == ({"b:1": 100, "c:2": 101}, 2)
    assert fold(members, UNTRIMMED) == (members, 0)
    assert fold({}, 100) == ({}, 0)


def test_an_mp_shared_by_two_windows_records_the_larger_reach():
    # Overdue (before_now) and a custom "open, due in the last 10 days": one MP, two windows
    wide = parse_definition({"all": [
        {"field": "status", "op": "in", "value": list(OPEN_STATUSES)},
        {"field": "dueAt", "op": "within_last", "value": "10d"}]})
    overdue = SYSTEM_BY_ID["7440"]
    admin = Principal("boss", "tenant", "realm", frozenset({"ticket_admin"}))
    assert Materialized.of(wide, admin) == Materialized.of(overdue.definition, admin)

    class Filter:
        def __init__(self, definition):
            self.definition = definition

        def details(self):
            return {}

    compiled = compile_count(admin, scope(admin, "template", False),
                             {"7440": Filter(overdue.definition), "wide": Filter(wide)}, None,
                             None, lambda entries: [mp for mp, _ in entries])
    shared = [mp for mp in compiled.sums if mp.id == Materialized.of(wide, admin).id]
    assert {mp.reach for mp in shared} == {10 * DAY}
    assert Materialized.of(overdue.definition, admin).reach == 0
