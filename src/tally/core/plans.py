"""Compiled ticket-count requests, the clock-free part of a sidebar read.

A sidebar sends the same request every few seconds: the same filters, caller and profile. All
of its answer except the clock — the materialised predicates (resolving `$me`/`$myTeams`,
canonical JSON and a SHA-1 for each of ~35 targets), the cells, the Redis keys, the read script's
spec and the `filterDetails` JSON — is a pure function of the resolved filter definitions, the
caller's user id and teams, the bucket plan and the profile. The app's `plans` cache
(tally.services.tickets) keeps the compiled form per request shape and reuses it only while the
filter catalog still hands out the very same definition objects (`CompiledCount.sources`, by
identity, not equality: a catalog reload, a new or a deleted filter compiles afresh), so a
cached plan is never staler than the catalog itself.

Each target reads its own buckets: the caller's view, or — when the filter (with the profile)
has caller conjuncts the view's buckets can say (`Scope.plan`) — the view narrowed by them, over
an MP without them that every caller shares.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from tally.core.conditions import Definition
from tally.core.model import Principal
from tally.core.predicates import Materialized, caller_conjuncts
from tally.core.filters import SUMMARY_FILTERS
from tally.core.visibility import Scope
from tally.core.cells import Cell


@dataclass(frozen=True)
class Target:
    """One number of the answer: a requested filter or a summary entry, Σ sign × cell over its
    `terms`, (bucket, sign) pairs."""

    key: str
    mp: Materialized
    definition: Definition
    terms: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class CompiledCount:
    """Everything about one request shape that does not depend on the clock."""

    targets: tuple[Target, ...]
    # The warm read counts each distinct (MP, time condition, terms) once: summary entries
    # repeat requested filters, and filters share MPs (Overdue and Due Today: one, two windows).
    entries: tuple[Target, ...]  # the first target of each distinct triple
    entry_of: tuple[int, ...]  # per target, its entry
    sums: Any  # the warm read, one count per entry: the store's compiled read (`read_plan`)
    filter_ids: tuple[str, ...]  # the requested ids, in order (the rest are summary entries)
    details_json: str  # `filterDetails`, serialised once
    sources: tuple[Definition | None, ...]  # what it was compiled from (identity-checked)

    @property
    def cells(self) -> list[Cell]:
        """Every (target, bucket) cell in target order: the unit of the cold and SQL paths."""
        return [Cell(t.mp, bucket) for t in self.targets for bucket, _ in t.terms]

    def cell_windows(self, spans: Sequence[tuple[float, float] | None]) -> list[Any]:
        """Per cell (as `cells` orders them), its target's window of `spans` (`windows`)."""
        return [span for t, span in zip(self.targets, spans) for _ in t.terms]

    def windows(self, now: int, tz: str) -> list[tuple[float, float] | None]:
        """Per target, its window now in `tz` (None for plain MPs)."""
        return [_window(t, now, tz) for t in self.targets]

    def entry_windows(self, now: int, tz: str) -> list[tuple[float, float]]:
        """The windows of the timed entries, in order (what `sums` is read with)."""
        return [_window(e, now, tz) for e in self.entries if e.definition.time_condition]

    def per_target(self, entry_counts: Sequence[int]) -> list[int]:
        return [entry_counts[i] for i in self.entry_of]

    def totals(self, cell_values: Sequence[int | None]) -> list[int]:
        """Per target, its terms applied to its cells' values (as `cells` orders them)."""
        totals, at = [], 0
        for target in self.targets:
            totals.append(sum(sign * (cell_values[at + j] or 0)
                              for j, (_, sign) in enumerate(target.terms)))
            at += len(target.terms)
        return totals


def _window(target: Target, now: int, tz: str) -> Any:
    condition = target.definition.time_condition
    return condition.window(now, tz) if condition else None


def sources(filters: Mapping[str, Any], profile: Definition | None) -> tuple[Any, ...]:
    """What a plan is compiled from: the filters' definitions and the profile, in order."""
    return tuple(f.definition for f in filters.values()) + (profile,)


def _target(key: str, origins: tuple[str, ...], definition: Definition, principal: Principal,
            scope: Scope, profile: Definition | None) -> Target:
    """A target over the shared MP and narrowed buckets when the buckets can say its caller
    conjuncts, else over the caller's own MP and view."""
    caller = caller_conjuncts(definition, profile)
    narrowed = scope.plan(caller) if caller else None
    view = narrowed if narrowed is not None else scope.plan()
    assert view is not None  # a view alone is always a bucket sum
    mp = Materialized.of(definition, principal, profile, origins, bucketed=narrowed is not None)
    terms = tuple([(b, 1) for b in view.add] + [(b, -1) for b in view.subtract])
    return Target(key, mp, definition, terms)


def compile_count(principal: Principal, scope: Scope, filters: Mapping[str, Any],
                  profile: Definition | None, profile_id: str | None,
                  read_plan: Callable[[Sequence[tuple[Materialized, Sequence[tuple[str, int]]]]],
                                      Any]
                  ) -> CompiledCount:
    """Compile a request: `filters` maps each requested id to its resolved filter, in order;
    `read_plan(entries)` compiles the store's read of one count per (MP, terms) entry (the
    counter store's Sums)."""
    named = [(fid, fid, f.definition) for fid, f in filters.items()]
    named += [(f"summary:{key}", spec.id, spec.definition)
              for key, spec in SUMMARY_FILTERS.items()]
    extra = (profile_id,) if profile_id else ()
    targets = tuple(_target(key, (fid, *extra), d, principal, scope, profile)
                    for key, fid, d in named)
    first: dict[tuple[str, Any, Any], int] = {}  # (MP id, time condition, terms) -> its entry
    entries: list[Target] = []
    entry_of: list[int] = []
    for t in targets:
        triple = (t.mp.id, t.definition.time_condition, t.terms)
        if triple not in first:
            first[triple] = len(entries)
            entries.append(t)
        entry_of.append(first[triple])
    # An MP several filters share (7474 SLA Breached and 7475 SLA At Risk: one MP, two windows;
    # Assigned to Me and the summary's totalOpen: one MP, two bucket sums) is registered with
    # every one of them as origin, whichever entry's cell turns out cold. Likewise its reach is
    # the largest of their windows' (trimming must leave every one whole).
    origins: dict[str, dict[str, None]] = {}
    reach: dict[str, int] = {}
    for t in targets:
        origins.setdefault(t.mp.id, {}).update(dict.fromkeys(t.mp.origins))
        reach[t.mp.id] = max(reach.get(t.mp.id, 0), t.mp.reach)
    reads = [(replace(e.mp, origins=tuple(origins[e.mp.id]), reach=reach[e.mp.id]), e.terms)
             for e in entries]
    details = {fid: f.details() for fid, f in filters.items()}
    return CompiledCount(targets, tuple(entries), tuple(entry_of), read_plan(reads),
                         tuple(filters), json.dumps(details, separators=(",", ":")),
                         sources(filters, profile))
