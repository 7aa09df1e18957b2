"""Compiled ticket-count plans: reused for the same request shape, never for a changed filter."""
from __future__ import annotations

import functools
import json
from dataclasses import replace
from types import SimpleNamespace

from tally.core.conditions import parse_definition
from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.core.filters import SUMMARY_FILTERS, SYSTEM_BY_ID
from tally.core.plans import compile_count
from tally.core.visibility import plan
from tally.services.container import Caches, build_caches
from tally.services.tickets import TicketCountQuery, TicketCountService
from tally.stores.redis.cells import Sums

TENANT = "00000000-0000-4000-8000-0000000000aa"
AGENT = Principal("agent-1", TENANT, "dev", frozenset({"ticket_agent"}), ("t1", "t2"))
SUMS = functools.partial(Sums.of, TENANT)  # the counter store's read plan
MINE = parse_definition({"all": [{"field": "assigneeId", "op": "eq", "value": "$me"}]})


def _filters(*ids: str) -> dict:
    return {fid: SYSTEM_BY_ID[fid] for fid in ids}


def _get(caches: Caches, principal: Principal, filters: dict, profile=None, profile_id=None):
    """The plan the ticket count service compiles (or reuses) for an agent view."""
    query = TicketCountQuery(principal, "agent", filters, profile, "UTC", False, profile_id)
    return TicketCountService(SimpleNamespace(caches=caches)).compiled(query)


def test_a_compiled_plan_names_every_target_and_the_agent_bucket_plan():
    filters = _filters("all", "3745", "7440")
    compiled = compile_count(AGENT, plan(AGENT, "agent"), filters, None, None, SUMS)
    assert [t.key for t in compiled.targets] == ["all", "3745", "7440"] + [
        f"summary:{key}" for key in SUMMARY_FILTERS]
    assert compiled.terms == (("team:t1", 1), ("team:t2", 1), ("asg:agent-1", 1),
                              ("asgteam:7:agent-1|t1", -1), ("asgteam:7:agent-1|t2", -1))
    assert compiled.targets[1].mp == Materialized.of(SYSTEM_BY_ID["3745"].definition, AGENT)
    assert len(compiled.cells) == len(compiled.targets) * len(compiled.terms)
    assert json.loads(compiled.details_json) == {fid: f.details() for fid, f in filters.items()}
    # totals apply Σ add − Σ subtract per target, a missing value counting 0
    values = [1, 2, 3, 4, None] * len(compiled.targets)
    assert compiled.totals(values) == [1 + 2 + 3 - 4] * len(compiled.targets)


def test_the_same_shape_is_compiled_once_and_a_new_definition_object_compiles_again():
    cache = build_caches({})
    filters = _filters("all", "3745")
    first = _get(cache, AGENT, filters)
    assert _get(cache, AGENT, dict(filters)) is first
    # a catalog reload hands out new objects, even when equal: never trust a stale compile
    reloaded = {fid: replace(f, definition=replace(f.definition)) for fid, f in filters.items()}
    again = _get(cache, AGENT, reloaded)
    assert again is not first and again.targets == first.targets


def test_callers_profiles_and_filter_lists_get_their_own_plans():
    cache = build_caches({})
    custom = {"c1": replace(SYSTEM_BY_ID["all"], id="c1", definition=MINE)}
    mine = _get(cache, AGENT, custom)
    other = _get(cache, replace(AGENT, user_id="agent-2"), custom)
    assert mine.targets[0].mp.root != other.targets[0].mp.root  # $me resolved per caller
    teams = _get(cache, replace(AGENT, teams=("t3",)), custom)
    assert teams.terms != mine.terms
    profiled = _get(cache, AGENT, custom, MINE, "p1")
    assert profiled.targets[0].mp != mine.targets[0].mp
    assert _get(cache, AGENT, _filters("all")) is not _get(cache, AGENT, _filters("3745"))


def test_the_cache_is_bounded_least_recently_used_first():
    cache = build_caches({"plans": 2})
    a = _get(cache, AGENT, _filters("all"))
    _get(cache, AGENT, _filters("3745"))
    assert _get(cache, AGENT, _filters("all")) is a  # used again: now the most recent
    _get(cache, AGENT, _filters("7440"))  # evicts 3745, not all
    assert _get(cache, AGENT, _filters("all")) is a
    assert len(cache.plans) == 2


def test_the_warm_read_counts_each_mp_and_window_once():
    # Overdue (7440) is requested and is also the summary's overdue: one entry for both.
    filters = _filters("all", "3745", "7440")
    compiled = compile_count(AGENT, plan(AGENT, "agent"), filters, None, None, SUMS)
    pairs = [(t.mp.id, t.definition.time_condition) for t in compiled.targets]
    assert len(compiled.entries) == len(set(pairs)) < len(compiled.targets)
    assert [pairs[compiled.targets.index(e)] for e in compiled.entries] == list(dict.fromkeys(
        pairs))
    for target, entry in zip(compiled.targets, compiled.entry_of):
        assert pairs[compiled.targets.index(compiled.entries[entry])] == (
            target.mp.id, target.definition.time_condition)
    assert compiled.per_target(list(range(len(compiled.entries)))) == list(compiled.entry_of)
    assert len(compiled.sums.cells) == len(compiled.entries) * len(compiled.terms)


def test_an_mp_shared_by_several_filters_is_registered_with_all_of_them():
    # 7474 (SLA Breached) and 7475 (SLA At Risk): one MP (slaDueAt), two windows, two entries.
    compiled = compile_count(AGENT, plan(AGENT, "agent"), _filters("7474", "7475"),
                             None, None, SUMS)
    shared = compiled.targets[0].mp.id
    assert compiled.targets[1].mp.id == shared
    cells = [c for c in compiled.sums.cells if c.mp.id == shared]
    assert len(cells) == 2 * len(compiled.terms)
    assert {c.mp.origins for c in cells} == {("7474", "7475")}
