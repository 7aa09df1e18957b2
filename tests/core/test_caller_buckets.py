"""Caller conjuncts as bucket choices: a compiled plan's cells, counted one ticket at a time,
give the oracle's numbers for every role, view, support narrowing, profile and placeholder shape
(the algebra alone; tests/services/test_caller_buckets.py holds Redis and SQL to the same)."""
from __future__ import annotations

import functools
import random
from dataclasses import replace

from tally.core.conditions import parse_definition
from tally.core.filters import SYSTEM_FILTERS
from tally.core.plans import CompiledCount, compile_count
from tally.core.visibility import scope, ticket_buckets
from tally.errors import VisibilityDenied
from tally.stores.redis.cells import Sums
from tests.support import oracle
from tests.support.random_filters import caller_definition, caller_filters
from tests.support.randomdata import principals, random_tickets

SEED = 20261207
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ZONES = ("UTC", "Asia/Calcutta", "America/New_York")


def _counted(compiled: CompiledCount, live: list[tuple[dict, set[str]]], tz: str,
             known: dict) -> list[int]:
    """Per target, Σ sign × (live tickets of the bucket its MP matches, within the window);
    `known` keeps each (MP, bucket, window) cell's count, as callers share MPs."""
    spans = compiled.windows(NOW, tz)
    values = []
    for cell, span in zip(compiled.cells, compiled.cell_windows(spans)):
        key = (cell.mp.id, cell.bucket, span)
        if key not in known:
            score = cell.mp.score_field
            known[key] = sum(1 for t, buckets in live
                             if cell.bucket in buckets and cell.mp.matches(t)
                             and (span is None or (t[score] is not None
                                                   and span[0] <= t[score] < span[1])))
        values.append(known[key])
    return compiled.totals(values)


def test_bucketed_plans_count_what_the_oracle_counts():
    # Given 200 seeded tickets, filters of every caller shape and pair, and two caller profiles
    tickets = random_tickets(seed=SEED, n=200, now_ms=NOW)
    live = [(t, set(ticket_buckets(t))) for t in tickets if not t["deleted"]]
    known: dict = {}
    rng = random.Random(SEED)
    named = {spec.id: spec for spec in SYSTEM_FILTERS if spec.id in ("7471", "7472", "3745")}
    for name, conditions in caller_filters(SEED).items():
        named[name] = replace(SYSTEM_FILTERS[0], id=name, definition=parse_definition(conditions))
    profiles = [None] + [parse_definition(caller_definition(rng), as_profile=True)
                         for _ in range(2)]
    sums = functools.partial(Sums.of, "tenant")
    checked, bucketed, seen = 0, 0, set()
    for i, principal in enumerate(principals()):
        for view_type in ("user", "agent", "template"):
            for support_only in (False, True):
                try:
                    view = scope(principal, view_type, support_only)
                except VisibilityDenied:
                    continue
                for j in (0, 1 + (i + support_only) % 2):  # no profile, then one of two
                    profile = profiles[j]
                    tz = ZONES[(i + j) % len(ZONES)]
                    compiled = compile_count(principal, view, named, profile, None, sums)
                    counts, summary = oracle.count(
                        tickets, principal, view_type,
                        {fid: f.definition for fid, f in named.items()}, profile, NOW, tz,
                        support_only)
                    # Then every number equals the oracle's
                    totals = dict(zip((t.key for t in compiled.targets),
                                      _counted(compiled, live, tz, known)))
                    where = (principal, view_type, support_only, j)
                    assert {fid: totals[fid] for fid in named} == counts, where
                    assert {k: totals[f"summary:{k}"] for k in summary} == summary, where
                    checked += 1
                    narrowed = [t.key for t in compiled.targets
                                if t.terms != compiled.targets[-1].terms]  # summary: the view
                    bucketed += len(narrowed)
                    seen.update(totals[key] for key in narrowed)
    assert checked > 100
    assert bucketed > 500  # many targets really read narrowed buckets ...
    assert len(seen) > 20  # ... and their counts differ, so the comparison has teeth
