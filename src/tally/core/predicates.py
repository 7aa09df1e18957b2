"""Materialised predicates: a filter (∧ profile) with `$me`/`$myTeams` resolved for one caller.

Redis keeps per-bucket counts for each materialised predicate (MP); a plain MP keeps integers, a
timed MP (its filter has a time condition) keeps the matching tickets scored by the condition's
timestamp, so any window is one ZCOUNT. Callers whose resolved predicates are equal share an MP.

A top-level conjunct naming only the caller (`assigneeId = $me`, `teamId ∈ $myTeams`,
`requesterId = $me`; `caller_conjuncts`) is left out of the MP when the caller's buckets can say
it instead (core/visibility.Scope.plan): "Assigned to Me" is then one MP for every caller, read
in `asg:<me>`, and the worker's cost per ticket change does not grow with the callers.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

from tally.core.conditions import ME, MY_TEAMS, Condition, Definition, Group
from tally.core.model import Principal
from tally.core.visibility import ASSIGNEE, REQUESTER, TEAMS


def _resolve_node(node: Group | Condition, principal: Principal) -> Group | Condition:
    if isinstance(node, Group):
        return Group(node.mode, tuple(_resolve_node(item, principal) for item in node.items))
    values = node.value if isinstance(node.value, tuple) else None
    if values is None:
        if node.value == ME:
            return Condition(node.field, node.op, principal.user_id)
        if node.value == MY_TEAMS:
            return Condition(node.field, node.op, tuple(dict.fromkeys(principal.teams)))
        return node
    resolved: list[Any] = []
    for value in values:
        if value == ME:
            resolved.append(principal.user_id)
        elif value == MY_TEAMS:
            resolved.extend(principal.teams)
        else:
            resolved.append(value)
    return Condition(node.field, node.op, tuple(dict.fromkeys(resolved)))


def _caller_kind(node: Group | Condition) -> str | None:
    """ASSIGNEE, TEAMS or REQUESTER when `node` says only that of the caller, else None."""
    if not isinstance(node, Condition) or node.op not in ("eq", "in"):
        return None  # ne/not_in with $me: the complement of a bucket within the view, not one
    values = set(node.value) if isinstance(node.value, tuple) else {node.value}
    if node.field == "assigneeId" and values == {ME}:
        return ASSIGNEE
    if node.field == "requesterId" and values == {ME}:
        return REQUESTER
    if node.field == "teamId" and values == {MY_TEAMS}:
        return TEAMS
    return None  # $me among other values (an `in`) is a union of buckets: not said here


def _without_caller(group: Group, kinds: set[str]) -> Group:
    """`group` less its caller conjuncts, through nested `all`s (never inside an `any`),
    adding their kinds to `kinds`; what is left is conjoined with them, so an emptied `all`
    (true) is right."""
    if group.mode != "all":
        return group
    kept: list[Group | Condition] = []
    for item in group.items:
        kind = _caller_kind(item)
        if kind is not None:
            kinds.add(kind)
        else:
            kept.append(_without_caller(item, kinds) if isinstance(item, Group) else item)
    return Group("all", tuple(kept))


def caller_conjuncts(definition: Definition, profile: Definition | None = None
                     ) -> frozenset[str]:
    """The caller conjuncts of `definition` ∧ `profile` (kinds of core/visibility)."""
    kinds: set[str] = set()
    for part in (definition, profile):
        if part is not None:
            _without_caller(part.root, kinds)
    return frozenset(kinds)


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Materialized:
    """One MP: resolved static predicate `root` and, for timed MPs, the field scoring members."""

    root: dict[str, Any]
    score_field: str | None = None
    # The filter (and profile) ids this MP was built for; bookkeeping only, not part of the id.
    origins: tuple[str, ...] = field(default=(), compare=False)
    # A timed MP: how far below now (ms) the windows it was built for reach (TimeCondition.
    # reach_ms; the largest over the filters sharing it). Recorded when it is registered, it
    # bounds what trimming may fold; bookkeeping only, not part of the id.
    reach: int = field(default=0, compare=False)

    @cached_property
    def matcher(self) -> Predicate:
        """`matches` compiled to one Python function on first use: reads never evaluate, the
        worker (per MP and change) and rebuilds do."""
        return compile_matcher(self.root)

    @cached_property
    def reads(self) -> frozenset[str]:
        """Every ticket field whose value can change what this MP counts, buckets aside: its
        predicate's fields, a timed MP's score field, and `deleted` (a tombstone matches none)."""
        score = {self.score_field} if self.score_field else set()
        return fields_read(self.root) | {"deleted"} | score

    @cached_property
    def spec(self) -> str:
        return json.dumps({"p": self.root, "z": self.score_field}, sort_keys=True,
                          separators=(",", ":"))

    @cached_property
    def id(self) -> str:
        return hashlib.sha1(self.spec.encode()).hexdigest()[:20]

    @classmethod
    def from_spec(cls, spec: str) -> "Materialized":
        data = json.loads(spec)
        return cls(data["p"], data["z"])

    @classmethod
    def of(cls, definition: Definition, principal: Principal, profile: Definition | None = None,
           origins: tuple[str, ...] = (), bucketed: bool = False) -> "Materialized":
        """The MP counting `definition` (within `profile`) for `principal`; `bucketed`: without
        the caller conjuncts, which the buckets read then say (Scope.plan of them)."""
        def static(part: Definition) -> dict[str, Any]:
            root = _without_caller(part.root, set()) if bucketed else part.root
            return _resolve_node(root, principal).to_obj()

        root = static(definition)
        if profile is not None:
            root = {"all": [root, static(profile)]}
        time = definition.time_condition
        return cls(root, time.field if time else None, origins, time.reach_ms if time else 0)

    def matches(self, ticket: Mapping[str, Any]) -> bool:
        """True when a live ticket satisfies the static predicate (any time window aside)."""
        return self.matcher(ticket)

    def member(self, ticket: Mapping[str, Any]) -> tuple[str, int] | None:
        """A timed MP's sorted-set member and score for a ticket, or None (null timestamp)."""
        score = ticket.get(self.score_field) if self.score_field else None
        if score is None:
            return None
        return f"{ticket['id']}:{ticket['version']}", int(score)


def fields_read(obj: Mapping[str, Any]) -> frozenset[str]:
    """The ticket fields a condition JSON (placeholder-free, as in Materialized.root) reads."""
    for mode in ("all", "any"):
        if mode in obj:
            return frozenset().union(*(fields_read(item) for item in obj[mode]))
    return frozenset((obj["field"],))


def _source(node: Mapping[str, Any], consts: list[Any]) -> str:
    """A Python expression over the ticket `t` for a condition JSON; values live in C[i]."""
    def const(value: Any) -> str:
        consts.append(value)
        return f"C[{len(consts) - 1}]"

    for mode, joiner, empty in (("all", " and ", "True"), ("any", " or ", "False")):
        if mode in node:
            parts = [_source(item, consts) for item in node[mode]]
            return f"({joiner.join(parts)})" if parts else empty
    field_name, op, value = node["field"], node["op"], node.get("value")
    get = f"t.get({const(field_name)})"
    if op == "contains":
        return f"({const(value)} in ({get} or ()))"
    if op in ("is_null", "not_null"):
        return f"({get} is {'' if op == 'is_null' else 'not '}None)"
    wanted = const(frozenset(value) if isinstance(value, (list, tuple)) else frozenset((value,)))
    if op in ("eq", "in"):
        return f"((x := {get}) is not None and x in {wanted})"
    return f"((x := {get}) is None or x not in {wanted})"  # ne, not_in


def compile_matcher(obj: Mapping[str, Any]) -> Predicate:
    """Materialized.matches for trusted, placeholder-free condition JSON as one function: a live
    ticket (not `deleted`) satisfying the predicate, with the null semantics of §5.
    Every value and field name is passed as a constant, never spelled into the source."""
    consts: list[Any] = ["deleted"]
    source = f"def matches(t):\n    return not t.get(C[0]) and {_source(obj, consts)}\n"
    namespace: dict[str, Any] = {"C": tuple(consts)}
    exec(compile(source, "<predicate>", "exec"), namespace)  # noqa: S102 (no input in source)
    return namespace["matches"]
