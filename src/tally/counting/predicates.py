"""Materialised predicates: a filter (∧ profile) with `$me`/`$myTeams` resolved for one caller.

Redis keeps per-bucket counts for each materialised predicate (MP); a plain MP keeps integers, a
timed MP (its filter has a time condition) keeps the matching tickets scored by the condition's
timestamp, so any window is one ZCOUNT. Callers whose resolved predicates are equal share an MP.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

from tally.counting.conditions import ME, MY_TEAMS, Condition, Definition, Group
from tally.counting.model import Principal


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


def resolve(definition: Definition, principal: Principal) -> dict[str, Any]:
    """The static part of `definition` for `principal`, as placeholder-free condition JSON."""
    return _resolve_node(definition.root, principal).to_obj()


Predicate = Callable[[Mapping[str, Any]], bool]


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
    """A fast evaluator for trusted, placeholder-free condition JSON (null semantics of §5)."""
    for mode, test in (("all", all), ("any", any)):
        if mode in obj:
            parts = tuple(compile_predicate(item) for item in obj[mode])
            return lambda t, parts=parts, test=test: test(p(t) for p in parts)
    return _leaf(obj["field"], obj["op"], obj.get("value"))


@dataclass(frozen=True)
class Materialized:
    """One MP: resolved static predicate `root` and, for timed MPs, the field scoring members."""

    root: dict[str, Any]
    score_field: str | None = None
    # The filter (and profile) ids this MP was built for; bookkeeping only, not part of the id.
    origins: tuple[str, ...] = field(default=(), compare=False)

    @cached_property
    def evaluator(self) -> Predicate:
        """Compiled on first use: reads never evaluate, the worker and rebuilds do."""
        return compile_predicate(self.root)

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
           origins: tuple[str, ...] = ()) -> "Materialized":
        """The MP counting `definition` (within `profile`) for `principal`."""
        root = resolve(definition, principal)
        if profile is not None:
            root = {"all": [root, resolve(profile, principal)]}
        time = definition.time_condition
        return cls(root, time.field if time else None, origins)

    def matches(self, ticket: Mapping[str, Any]) -> bool:
        """True when a live ticket satisfies the static predicate (any time window aside)."""
        return not ticket.get("deleted") and self.evaluator(ticket)

    def member(self, ticket: Mapping[str, Any]) -> tuple[str, int] | None:
        """A timed MP's sorted-set member and score for a ticket, or None (null timestamp)."""
        score = ticket.get(self.score_field) if self.score_field else None
        if score is None:
            return None
        return f"{ticket['id']}:{ticket['version']}", int(score)
