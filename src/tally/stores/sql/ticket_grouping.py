"""Grouping tickets for counting: the GROUP BY columns that tell buckets apart, what a group's
values decide of a condition (the rest is tested per row), and the sums over grouped rows."""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import ColumnElement, case

from tally.core.predicates import compile_matcher, fields_read
from tally.stores.sql.models import Ticket
from tally.stores.sql.ticket_scope import ID_COLUMNS, Bucket


# Dimension name → (the ticket field conditions name, its column). Raw dimensions group by the
# column itself: its values are few by construction (validated enums, a flag).
KEYED_DIMENSIONS = {"team": "teamId", "asg": "assigneeId", "req": "requesterId"}
ID_ATTRS = {"team": "team", "asg": "assignee", "req": "requester"}  # their Bucket attribute
BUCKET_DIMENSIONS = ("team", "asg", "req", "sr")  # what Bucket.holds reads
RAW_DIMENSIONS = {"sr": ("isSupportRequest", Ticket.is_support_request),
                  "status": ("status", Ticket.status), "priority": ("priority", Ticket.priority)}
DIMENSION_FIELDS = {**KEYED_DIMENSIONS, **{name: f for name, (f, _) in RAW_DIMENSIONS.items()}}
FIELD_DIMENSIONS = {field: name for name, field in DIMENSION_FIELDS.items()}
COMPARISONS = ("eq", "in", "ne", "not_in")


def dimensions(buckets: Sequence[Bucket],
               raw: Iterable[str] = ()) -> dict[str, ColumnElement[Any]]:
    """GROUP BY columns telling the buckets apart: each id column collapsed to the values the
    buckets name (any other value groups as NULL), so there are few groups however many rows;
    and the flat columns of RAW_DIMENSIONS named in `raw`, as they are."""
    dims: dict[str, ColumnElement[Any]] = {}
    for name, attr in ID_ATTRS.items():
        column = ID_COLUMNS[attr]
        values = sorted({getattr(b, attr) for b in buckets} - {None})
        if values:
            dims[name] = case((column.in_(values), column), else_=None)
    for name, (_field, column) in RAW_DIMENSIONS.items():
        if name in raw or (name == "sr" and any(b.support for b in buckets)):
            dims[name] = column
    return dims


def _values(leaf: dict[str, Any]) -> list[Any]:
    value = leaf.get("value")
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _decided(node: dict[str, Any], keyed: dict[str, set[Any]]) -> bool:
    """True when a group's dimension values decide `node` for every ticket of the group: a
    raw dimension under any operator but `contains`; a keyed one (NULL for any value it does
    not name) under eq/in/ne/not_in on values it names, which such a NULL answers as the
    ticket's own value would (no match for eq/in, a match for ne/not_in)."""
    for mode in ("all", "any"):
        if mode in node:
            return all(_decided(item, keyed) for item in node[mode])
    name = FIELD_DIMENSIONS.get(node["field"])
    if name in RAW_DIMENSIONS:
        return node["op"] != "contains"
    return (name in keyed and node["op"] in COMPARISONS
            and all(isinstance(v, str) and v in keyed[name] for v in _values(node)))


def split(root: dict[str, Any], keyed: dict[str, set[Any]]
          ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """`root` as (what the group's dimensions decide, what SQL must test per row), either None
    when empty; their conjunction is `root`. Only a top-level `all` is split."""
    if _decided(root, keyed):
        return root, None
    if "all" not in root:
        return None, root
    decided = [item for item in root["all"] if _decided(item, keyed)]
    rest = [item for item in root["all"] if not _decided(item, keyed)]
    return ({"all": decided} if decided else None), {"all": rest}


def raw_dimensions(node: dict[str, Any], found: set[str]) -> None:
    """Adds to `found` the raw dimensions the conditions of `node` name."""
    for mode in ("all", "any"):
        if mode in node:
            for item in node[mode]:
                raw_dimensions(item, found)
            return
    name = FIELD_DIMENSIONS.get(node["field"])
    if name in RAW_DIMENSIONS and node["op"] != "contains":
        found.add(name)


class Groups:
    """The grouped rows of cell_counts (dimension values first, in `names` order, then the
    aggregates) and the sum of one aggregate over the groups of a bucket that pass what the
    dimensions decide. Each test runs once per distinct value of the dimensions it reads: a few
    hundred groups, a few values each."""

    def __init__(self, names: list[str], rows: Sequence[Any]):
        self.names, self.rows = names, rows
        self._keys: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
        self._passing: dict[Any, list[bool]] = {}
        self._chosen: dict[tuple[Bucket, str], list[Any]] = {}

    def _test(self, read: list[int], test: Callable[[dict[str, Any]], bool]) -> list[bool]:
        keys = self._keys.get(tuple(read))
        if keys is None:
            keys = self._keys[tuple(read)] = [tuple(row[i] for i in read) for row in self.rows]
        names = [self.names[i] for i in read]
        seen = {key: test(dict(zip(names, key))) for key in set(keys)}
        return [seen[key] for key in keys]

    def _pass(self, what: Bucket | dict[str, Any] | None) -> list[bool]:
        spec = what if isinstance(what, Bucket) else json.dumps(what, sort_keys=True)
        found = self._passing.get(spec)
        if found is not None:
            return found
        if what is None:
            found = [True] * len(self.rows)
        elif isinstance(what, Bucket):
            found = self._test([i for i, name in enumerate(self.names)
                                if name in BUCKET_DIMENSIONS], what.holds)
        else:
            fields = fields_read(what)
            # compiled once per spec per read (_passing); a read is one SQL query's worth
            matcher = compile_matcher(json.loads(spec))
            found = self._test([i for i, name in enumerate(self.names)
                                if DIMENSION_FIELDS[name] in fields],
                               lambda values: matcher({DIMENSION_FIELDS[name]: value
                                                       for name, value in values.items()}))
        self._passing[spec] = found
        return found

    def total(self, bucket: Bucket, decided: dict[str, Any] | None, column: int) -> int:
        """Aggregate `column` summed over the groups of `bucket` that pass `decided`."""
        key = (bucket, json.dumps(decided, sort_keys=True))
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self._chosen[key] = [
                row for row, held, ok in zip(self.rows, self._pass(bucket), self._pass(decided))
                if held and ok]
        column += len(self.names)
        return sum(int(row[column]) for row in chosen)
