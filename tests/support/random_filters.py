"""Seeded random filter definitions in the condition language (contract §5), for property tests.

Values come from the pools of tests.support.randomdata, so filters match some random tickets;
`$me` and `$myTeams` appear where the language allows them.
"""
from __future__ import annotations

import random
from typing import Any

from tally.core.model import PRIORITIES, STATUSES
from tests.support.randomdata import TAGS, TEAMS, USERS

CATEGORIES = ("hardware", "software", "access")
SCALARS: dict[str, tuple[Any, ...]] = {
    "status": STATUSES, "priority": PRIORITIES, "teamId": TEAMS, "assigneeId": USERS,
    "requesterId": USERS, "category": CATEGORIES, "isSupportRequest": (True, False)}
PLACEHOLDER = {"assigneeId": "$me", "requesterId": "$me", "teamId": "$myTeams"}
TIMESTAMPS = ("createdAt", "dueAt", "slaDueAt")
TIME_OPS = ("today", "before_now", "within_next", "within_last", "older_than")
DURATIONS = ("90s", "30m", "4h", "36h", "2d")


def condition(rng: random.Random) -> dict[str, Any]:
    """One static condition."""
    field = rng.choice(sorted(SCALARS) + ["tags", "createdAt", "dueAt"])
    if field == "tags":
        return {"field": field, "op": "contains", "value": rng.choice(TAGS)}
    if field in TIMESTAMPS or rng.random() < 0.1:
        return {"field": field, "op": rng.choice(("is_null", "not_null"))}
    pool, placeholder = SCALARS[field], PLACEHOLDER.get(field)
    op = rng.choice(("eq", "ne", "in", "not_in"))
    if op in ("in", "not_in"):
        values = rng.sample(pool, rng.randint(1, min(3, len(pool))))
        if placeholder and rng.random() < 0.4:
            values = placeholder if placeholder == "$myTeams" else values + [placeholder]
        return {"field": field, "op": op, "value": values}
    if placeholder == "$me" and rng.random() < 0.4:
        return {"field": field, "op": op, "value": "$me"}
    return {"field": field, "op": op, "value": rng.choice(pool)}


def group(rng: random.Random, depth: int = 1) -> dict[str, Any]:
    """An `all` or `any` of one to three conditions or (up to three deep) nested groups."""
    items = [group(rng, depth + 1) if depth < 3 and rng.random() < 0.3 else condition(rng)
             for _ in range(rng.randint(1, 3))]
    return {rng.choice(("all", "any")): items}


def time_condition(rng: random.Random) -> dict[str, Any]:
    op = rng.choice(TIME_OPS)
    made = {"field": rng.choice(TIMESTAMPS), "op": op}
    if op not in ("today", "before_now"):
        made["value"] = rng.choice(DURATIONS)
    return made


def definition(rng: random.Random, timed: bool = False) -> dict[str, Any]:
    """A random definition; `timed` adds one time condition at the top level of an `all`."""
    static = group(rng)
    return {"all": [static, time_condition(rng)]} if timed else static


# Conditions on the caller alone: the first six are caller conjuncts at the top level of an
# `all` (the buckets say them, core/visibility.Scope.plan); the rest must stay in the predicate.
CALLER_SHAPES: tuple[dict[str, Any], ...] = (
    {"field": "assigneeId", "op": "eq", "value": "$me"},
    {"field": "assigneeId", "op": "in", "value": ["$me"]},
    {"field": "teamId", "op": "in", "value": "$myTeams"},
    {"field": "teamId", "op": "in", "value": ["$myTeams", "$myTeams"]},
    {"field": "requesterId", "op": "eq", "value": "$me"},
    {"field": "requesterId", "op": "in", "value": ["$me"]},
    {"field": "assigneeId", "op": "ne", "value": "$me"},
    {"field": "teamId", "op": "not_in", "value": "$myTeams"},
    {"field": "assigneeId", "op": "in", "value": ["$me", "u1"]},
    {"field": "teamId", "op": "in", "value": ["$myTeams", "t4"]},
    {"any": [{"field": "assigneeId", "op": "eq", "value": "$me"},
             {"field": "priority", "op": "in", "value": ["high", "critical"]}]},
)


def caller_definition(rng: random.Random, timed: bool = False) -> dict[str, Any]:
    """An `all` of one to three CALLER_SHAPES, maybe a random group, maybe nested in an inner
    `all`; `timed` adds a time condition at the top level."""
    items: list[dict[str, Any]] = rng.sample(CALLER_SHAPES, rng.randint(1, 3))
    if rng.random() < 0.6:
        items.append(group(rng))
    rng.shuffle(items)
    if rng.random() < 0.3:
        items = [{"all": items[:1]}, *items[1:]] if len(items) > 1 else [{"all": items}]
    if timed:
        items.append(time_condition(rng))
    return {"all": items}


def caller_filters(seed: int, extra: int = 6) -> dict[str, dict[str, Any]]:
    """Named definitions covering every caller shape alone and the conjunct pairs (assignee ∧
    teams, with the requester too), each with a random rest, then `extra` random ones (some
    timed): the placeholder shapes a bucketed plan must count exactly."""
    rng = random.Random(seed)
    made: dict[str, dict[str, Any]] = {}
    for i, shape in enumerate(CALLER_SHAPES):
        made[f"shape-{i}"] = {"all": [shape, group(rng)] if i % 2 else [shape]}
    a, a_in, t, t_list, r = CALLER_SHAPES[:5]
    for name, pair in (("a-t", [a, t]), ("a-t-list", [a_in, t_list]), ("a-r", [a, r]),
                       ("t-r", [t, r]), ("a-t-r", [a, t, r]), ("t-in-all", [{"all": [t]}, a])):
        made[name] = {"all": pair + [condition(rng)]}
    for i in range(extra):
        made[f"random-{i}"] = caller_definition(rng, timed=i % 3 == 0)
    return made
