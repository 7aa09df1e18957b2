"""Compiled ticket-count plans: reused for the same request shape, never for a changed filter."""
from __future__ import annotations

import functools
import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from tally.core.conditions import parse_definition
from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.core.filters import SUMMARY_FILTERS, SYSTEM_BY_ID
from tally.core.plans import compile_count
from tally.core.visibility import scope
from tally.services.container import Caches, build_caches
from tally.services.tickets import TicketCountQuery, TicketCountService
from tally.stores.redis.cells import Sums

TENANT = "00000000-0000-4000-8000-0000000000aa"
AGENT = Principal("agent-1", TENANT, "dev", frozenset({"ticket_agent"}), ("t1", "t2"))
SUMS = functools.partial(Sums.of, TENANT)  # the counter store's read plan
MINE = parse_definition({"all": [{"field": "assigneeId", "op": "eq", "value": "$me"}]})
TEAM_OPEN = parse_definition({"all": [{"field": "teamId", "op": "in", "value": "$myTeams"},
                                      {"field": "status", "op": "eq", "value": "open"}]})


def _filters(*ids: str) -> dict:
    return {fid: SYSTEM_BY_ID[fid] for fid in ids}


def _get(caches: Caches, principal: Principal, filters: dict, profile=None, profile_id=None):
    """The plan the ticket count service compiles (or reuses) for an agent view."""
    query = TicketCountQuery(principal, "agent", filters, profile, "UTC", False, profile_id)
    return TicketCountService(SimpleNamespace(caches=caches)).compiled(query)


def test_a_compiled_plan_names_every_target_and_the_agent_bucket_plan():
    filters = _filters("all", "3745", "7440")
    compiled = compile_count(AGENT, scope(AGENT, "agent"), filters, None, None, SUMS)
    assert [t.key for t in compiled.targets] == ["all", "3745", "7440"] + [
        f"summary:{key}" for key in SUMMARY_FILTERS]
    view = (("team:t1", 1), ("team:t2", 1), ("asg:agent-1", 1),
            ("asgteam:7:agent-1|t1", -1), ("asgteam:7:agent-1|t2", -1))
    assert {t.terms for t in compiled.targets} == {view}  # no filter here names the caller
    assert compiled.targets[1].mp == Materialized.of(SYSTEM_BY_ID["3745"].definition, AGENT)
    assert len(compiled.cells) == len(compiled.targets) * len(view)
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
    assert mine is not other
    assert mine.targets[0].terms == (("asg:agent-1", 1),)
    teams = _get(cache, replace(AGENT, teams=("t3",)), custom)
    assert teams.targets[-1].terms != mine.targets[-1].terms  # the summary's view buckets
    profiled = _get(cache, AGENT, custom, TEAM_OPEN, "p1")
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
    compiled = compile_count(AGENT, scope(AGENT, "agent"), filters, None, None, SUMS)
    pairs = [(t.mp.id, t.definition.time_condition) for t in compiled.targets]
    assert len(compiled.entries) == len(set(pairs)) < len(compiled.targets)
    assert [pairs[compiled.targets.index(e)] for e in compiled.entries] == list(dict.fromkeys(
        pairs))
    for target, entry in zip(compiled.targets, compiled.entry_of):
        assert pairs[compiled.targets.index(compiled.entries[entry])] == (
            target.mp.id, target.definition.time_condition)
    assert compiled.per_target(list(range(len(compiled.entries)))) == list(compiled.entry_of)
    assert len(compiled.sums.cells) == sum(len(e.terms) for e in compiled.entries)


def test_an_mp_shared_by_several_filters_is_registered_with_all_of_them():
    # 7474 (SLA Breached) and 7475 (SLA At Risk): one MP (slaDueAt), two windows, two entries.
    compiled = compile_count(AGENT, scope(AGENT, "agent"), _filters("7474", "7475"),
                             None, None, SUMS)
    shared = compiled.targets[0].mp.id
    assert compiled.targets[1].mp.id == shared
    cells = [c for c in compiled.sums.cells if c.mp.id == shared]
    assert len(cells) == 2 * len(compiled.targets[0].terms)
    assert {c.mp.origins for c in cells} == {("7474", "7475")}


def _custom(conditions: dict) -> dict:
    return {"c": replace(SYSTEM_BY_ID["all"], id="c", definition=parse_definition(conditions))}


def _mp_ids(callers, filters, view_type="agent", profile=None) -> set[str]:
    """The MP ids the first target gets for each caller."""
    return {compile_count(p, scope(p, view_type), filters, profile, None, SUMS).targets[0].mp.id
            for p in callers}


AGENTS = [Principal(f"agent-{i}", TENANT, "dev", frozenset({"ticket_agent"}),
                    (f"t{i % 3}", f"t{i % 5}")) for i in range(40)]
ADMIN = Principal("boss", TENANT, "dev", frozenset({"ticket_admin"}), ("t1",))


def test_assigned_to_me_and_my_team_are_one_mp_for_every_caller_read_in_their_buckets():
    # Given 40 agents and an admin asking for Assigned to Me (7471) and My Team (7472)
    for fid in ("7471", "7472"):
        ids = _mp_ids(AGENTS + [ADMIN], _filters(fid))
        # Then every caller shares one MP: the open-status part, which totalOpen reads too
        open_mp = compile_count(ADMIN, scope(ADMIN, "agent"), _filters(fid), None, None,
                                SUMS).targets[-5].mp
        assert ids == {open_mp.id}, fid
    compiled = compile_count(AGENT, scope(AGENT, "agent"), _filters("7471", "7472"), None, None,
                             SUMS)
    assert compiled.targets[0].terms == (("asg:agent-1", 1),)
    assert compiled.targets[1].terms == (("team:t1", 1), ("team:t2", 1))
    # one MP read three ways (Assigned to Me, My Team, the summary's totalOpen): three entries
    assert len({e.mp.id for e in compiled.entries}) < len(compiled.entries)


def test_a_profiles_caller_conjuncts_join_the_filters():
    mine = parse_definition({"all": [{"field": "assigneeId", "op": "in", "value": ["$me"]},
                             {"field": "priority", "op": "eq", "value": "high"}]})
    ids = _mp_ids(AGENTS, _filters("7472"), profile=mine)
    assert len(ids) == 1
    compiled = compile_count(AGENT, scope(AGENT, "agent"), _filters("7472"), mine, "p", SUMS)
    assert compiled.targets[0].terms == (("asgteam:7:agent-1|t1", 1), ("asgteam:7:agent-1|t2", 1))


@pytest.mark.parametrize("conditions, view_type", [
    ({"any": [{"field": "assigneeId", "op": "eq", "value": "$me"},
              {"field": "priority", "op": "eq", "value": "high"}]}, "agent"),
    ({"all": [{"field": "assigneeId", "op": "ne", "value": "$me"}]}, "agent"),
    ({"all": [{"field": "teamId", "op": "not_in", "value": "$myTeams"}]}, "agent"),
    ({"all": [{"field": "assigneeId", "op": "in", "value": ["$me", "u1"]}]}, "agent"),
    ({"all": [{"field": "teamId", "op": "in", "value": ["$myTeams", "t9"]}]}, "agent"),
    ({"all": [{"field": "requesterId", "op": "eq", "value": "$me"}]}, "agent"),
    ({"all": [{"field": "assigneeId", "op": "eq", "value": "$me"}]}, "user"),
])
def test_what_no_bucket_says_stays_in_each_callers_own_mp(conditions, view_type):
    callers = AGENTS[:10] if view_type == "agent" else [
        Principal(f"user-{i}", TENANT, "dev", frozenset({"ticket_user"})) for i in range(10)]
    assert len(_mp_ids(callers, _custom(conditions), view_type)) == 10


def test_my_team_for_a_caller_of_no_team_keeps_its_predicate():
    loner = Principal("loner", TENANT, "dev", frozenset({"ticket_agent"}))
    compiled = compile_count(loner, scope(loner, "agent"), _filters("7472"), None, None, SUMS)
    target = compiled.targets[0]
    assert target.terms == (("asg:loner", 1),)  # the view: no team bucket to choose
    assert target.mp == Materialized.of(SYSTEM_BY_ID["7472"].definition, loner)
