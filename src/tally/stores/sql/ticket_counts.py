"""Ticket cells from SQL: one conditional-aggregate query answers every cell of a request."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Column, ColumnElement, and_, case, func, or_, select, text, true, union_all
from sqlalchemy.sql.visitors import replacement_traverse
from sqlalchemy.orm import Session

from tally.core.predicates import Materialized, Predicate, compile_matcher, fields_read
from tally.stores.sql.models import OutboxRow, Ticket
from tally.stores.sql.conditions import predicate, window
from tally.core.cells import Cell, CellId

SUPPORT = "sr:"
GROUPING_WORK_MEM = "32MB"


def bucket_predicate(bucket: str) -> ColumnElement[bool]:
    """SQL for a scope bucket name of counting/visibility.py (`sr:` = support requests only)."""
    parts = []
    if bucket.startswith(SUPPORT):
        parts.append(Ticket.is_support_request.is_(True))
        bucket = bucket[len(SUPPORT):]
    kind, _, rest = bucket.partition(":")
    if kind == "team":
        parts.append(Ticket.team_id == rest)
    elif kind == "asg":
        parts.append(Ticket.assignee_id == rest)
    elif kind == "req":
        parts.append(Ticket.requester_id == rest)
    elif kind == "asgteam":
        length, _, tail = rest.partition(":")
        size = int(length)
        parts += [Ticket.assignee_id == tail[:size], Ticket.team_id == tail[size + 1:]]
    elif kind != "all":
        raise ValueError(f"unknown bucket {bucket!r}")
    return and_(true(), *parts)


# The id column each _Bucket attribute names.
ID_COLUMNS = {"team": Ticket.team_id, "assignee": Ticket.assignee_id,
              "requester": Ticket.requester_id}


def _live(tenant: str) -> list[ColumnElement[bool]]:
    return [Ticket.tenant_id == tenant, Ticket.deleted.is_(False)]


@dataclass(frozen=True)
class _Bucket:
    """A bucket name parsed into the column values a ticket needs to be counted in it."""

    support: bool
    team: str | None = None
    assignee: str | None = None
    requester: str | None = None

    @classmethod
    def parse(cls, bucket: str) -> "_Bucket":
        support = bucket.startswith(SUPPORT)
        kind, _, rest = bucket[len(SUPPORT) if support else 0:].partition(":")
        if kind == "team":
            return cls(support, team=rest)
        if kind == "asg":
            return cls(support, assignee=rest)
        if kind == "req":
            return cls(support, requester=rest)
        if kind == "asgteam":
            length, _, tail = rest.partition(":")
            size = int(length)
            return cls(support, team=tail[size + 1:], assignee=tail[:size])
        if kind != "all":
            raise ValueError(f"unknown bucket {bucket!r}")
        return cls(support)

    def within(self, other: "_Bucket") -> bool:
        """True when every ticket of this bucket is also in `other`."""
        return ((not other.support or self.support)
                and all(mine == theirs or theirs is None
                        for mine, theirs in ((self.team, other.team),
                                             (self.assignee, other.assignee),
                                             (self.requester, other.requester))))

    def holds(self, dims: dict[str, Any]) -> bool:
        """True when a group of tickets with these (collapsed) column values is in the bucket."""
        return ((not self.support or bool(dims.get("sr")))
                and all(value is None or dims.get(name) == value
                        for name, value in (("team", self.team), ("asg", self.assignee),
                                            ("req", self.requester))))


def _dimensions(buckets: Sequence[_Bucket],
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


# Dimension name → (the ticket field conditions name, its column). Raw dimensions group by the
# column itself: its values are few by construction (validated enums, a flag).
KEYED_DIMENSIONS = {"team": "teamId", "asg": "assigneeId", "req": "requesterId"}
ID_ATTRS = {"team": "team", "asg": "assignee", "req": "requester"}  # their _Bucket attribute
BUCKET_DIMENSIONS = ("team", "asg", "req", "sr")  # what _Bucket.holds reads
RAW_DIMENSIONS = {"sr": ("isSupportRequest", Ticket.is_support_request),
                  "status": ("status", Ticket.status), "priority": ("priority", Ticket.priority)}
DIMENSION_FIELDS = {**KEYED_DIMENSIONS, **{name: f for name, (f, _) in RAW_DIMENSIONS.items()}}
FIELD_DIMENSIONS = {field: name for name, field in DIMENSION_FIELDS.items()}
COMPARISONS = ("eq", "in", "ne", "not_in")


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


def _split(root: dict[str, Any], keyed: dict[str, set[Any]]
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


def _raw_dimensions(node: dict[str, Any], found: set[str]) -> None:
    """Adds to `found` the raw dimensions the conditions of `node` name."""
    for mode in ("all", "any"):
        if mode in node:
            for item in node[mode]:
                _raw_dimensions(item, found)
            return
    name = FIELD_DIMENSIONS.get(node["field"])
    if name in RAW_DIMENSIONS and node["op"] != "contains":
        found.add(name)


def _scope(parsed: dict[str, _Bucket]) -> list[ColumnElement[bool]]:
    """The tickets of any of the buckets as branches: a bucket inside another (an agent's
    `asgteam:me|t` is inside `team:t`, a `sr:` bucket inside its plain twin) is left out, and
    buckets naming one column of the same kind share a branch (`team_id IN (…)`: one key range
    set of one index)."""
    kept = [name for name, bucket in parsed.items()
            if not any(other != bucket and bucket.within(other) for other in parsed.values())]
    wanted: dict[Any, list[Any]] = {}
    for name in kept or parsed:
        bucket = parsed[name]
        named = [(attr, getattr(bucket, attr)) for attr in ID_COLUMNS
                 if getattr(bucket, attr) is not None]
        if len(named) == 1:
            (attr, value), = named
            wanted.setdefault((bucket.support, attr), []).append(value)
        else:
            wanted[name] = [bucket_predicate(name)]
    return [and_(true(), *([Ticket.is_support_request.is_(True)] if key[0] else []),
                 ID_COLUMNS[key[1]].in_(values)) if isinstance(key, tuple) else values[0]
            for key, values in wanted.items()]


def _disjoint(branches: list[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    """Each branch without the rows of the branches before it (a row counts once)."""
    return [and_(mine, or_(*branches[:i]).is_not(true())) if i else mine
            for i, mine in enumerate(branches)]


class _Rows:
    """Where a query over the live tickets of some buckets reads them (`rows`, filtered by
    `where`), and `on`, which points an expression over Ticket's columns at those rows.

    On PostgreSQL, a UNION ALL of the branches of _scope made disjoint: each is a key range of one
    scope index (migration 0002), and each branch's rows group apart, where one bitmap OR fed a
    sort of every row. Covering indexes would make each branch index-only; they were measured
    and left out (docs/benchmarks.md, "Cold recompute"). SQLite gains nothing from branches:
    the table, filtered by their OR.
    """

    def __init__(self, tenant: str, parsed: dict[str, _Bucket], dialect: str):
        scope = _scope(parsed)
        self.rows: Any = Ticket.__table__
        self.where = [*_live(tenant), or_(*scope)]
        if dialect == "postgresql" and len(scope) > 1:
            self.rows = union_all(*[select(Ticket.__table__).where(*_live(tenant), branch)
                                    for branch in _disjoint(scope)]).subquery("scoped")
            self.where = []

    def _swap(self, element: Any) -> Any:
        if isinstance(element, Column) and element.table is Ticket.__table__:
            return self.rows.c[element.key]
        return None

    def on(self, expression: Any) -> ColumnElement[Any]:
        if self.rows is Ticket.__table__:
            return expression
        if hasattr(expression, "__clause_element__"):  # an ORM attribute such as Ticket.id
            expression = expression.__clause_element__()
        return replacement_traverse(expression, {}, self._swap)


def cell_counts(session: Session, tenant: str, cells: Sequence[Cell],
                windows: Sequence[tuple[float, float] | None]) -> list[int]:
    """Every cell's count (timed cells within their window) from one query.

    The rows are grouped by the few id values the cells' buckets name and by the flat columns
    their conditions test (status, priority, the support flag). What a group's values decide
    (conditions on those columns; on an id column, only on values the buckets name) is decided
    in Python once per group; the rest of a predicate (tags, timestamps, its window, other
    columns) is one conditional aggregate per distinct (rest, window), not per cell. An agent's
    35 numbers over 7 buckets cost 15 aggregates of one or two tests, not 245.
    """
    if not cells:
        return []
    dialect = session.get_bind().dialect.name
    names = list(dict.fromkeys(c.bucket for c in cells))
    parsed = {name: _Bucket.parse(name) for name in names}
    raw: set[str] = set()
    for cell in cells:
        _raw_dimensions(cell.mp.root, raw)
    # The id values the buckets group by (conditions on other values stay per row: a filter
    # naming hundreds of teams must not multiply the groups).
    keyed = {name: values for name in KEYED_DIMENSIONS
             if (values := {getattr(b, ID_ATTRS[name]) for b in parsed.values()} - {None})}
    targets: dict[tuple[str, Any], tuple[dict[str, Any] | None, int]] = {}
    rests: dict[tuple[str, Any], int] = {}
    sums = []
    for cell, span in zip(cells, windows):
        key = (cell.mp.id, span)
        if key in targets:
            continue
        decided, rest = _split(cell.mp.root, keyed)
        condition = None if rest is None else predicate(rest, dialect)
        if span is not None:
            lo, hi = span
            timed = window(cell.mp.score_field, None if lo == float("-inf") else int(lo), int(hi))
            condition = timed if condition is None else and_(condition, timed)
        spec = (json.dumps(rest, sort_keys=True), span and cell.mp.score_field, span)
        if spec not in rests:
            rests[spec] = len(sums)
            sums.append(func.count() if condition is None else func.count().filter(condition))
        targets[key] = (decided, rests[spec])
    scoped = _Rows(tenant, parsed, dialect)
    dims = {name: scoped.on(column)
            for name, column in _dimensions(list(parsed.values()), raw).items()}
    query = select(*[column.label(name) for name, column in dims.items()],
                   *[scoped.on(total) for total in sums]).select_from(scoped.rows) \
        .where(*scoped.where)
    if dims:
        query = query.group_by(*dims.values())
    if dialect == "postgresql":
        # A few groups, but PostgreSQL cannot tell from the CASE keys: room to hash them
        # rather than sort every row (to disk) first. No JIT: see _no_jit. Both revert when
        # the snapshot ends.
        session.execute(text(f"SET LOCAL work_mem = '{GROUPING_WORK_MEM}'"))
        _no_jit(session)
    groups = _Groups(list(dims), session.execute(query).all())
    counts = []
    for cell, span in zip(cells, windows):
        decided, column = targets[(cell.mp.id, span)]
        counts.append(groups.total(parsed[cell.bucket], decided, column))
    return counts


@lru_cache(maxsize=4096)
def _matcher(spec: str) -> Predicate:
    return compile_matcher(json.loads(spec))


class _Groups:
    """The grouped rows of cell_counts (dimension values first, in `names` order, then the
    aggregates) and the sum of one aggregate over the groups of a bucket that pass what the
    dimensions decide. Each test runs once per distinct value of the dimensions it reads: a few
    hundred groups, a few values each."""

    def __init__(self, names: list[str], rows: Sequence[Any]):
        self.names, self.rows = names, rows
        self._keys: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
        self._passing: dict[Any, list[bool]] = {}
        self._chosen: dict[tuple[_Bucket, str], list[Any]] = {}

    def _test(self, read: list[int], test: Callable[[dict[str, Any]], bool]) -> list[bool]:
        keys = self._keys.get(tuple(read))
        if keys is None:
            keys = self._keys[tuple(read)] = [tuple(row[i] for i in read) for row in self.rows]
        names = [self.names[i] for i in read]
        seen = {key: test(dict(zip(names, key))) for key in set(keys)}
        return [seen[key] for key in keys]

    def _pass(self, what: _Bucket | dict[str, Any] | None) -> list[bool]:
        spec = what if isinstance(what, _Bucket) else json.dumps(what, sort_keys=True)
        found = self._passing.get(spec)
        if found is not None:
            return found
        if what is None:
            found = [True] * len(self.rows)
        elif isinstance(what, _Bucket):
            found = self._test([i for i, name in enumerate(self.names)
                                if name in BUCKET_DIMENSIONS], what.holds)
        else:
            fields = fields_read(what)
            matcher = _matcher(spec)
            found = self._test([i for i, name in enumerate(self.names)
                                if DIMENSION_FIELDS[name] in fields],
                               lambda values: matcher({DIMENSION_FIELDS[name]: value
                                                       for name, value in values.items()}))
        self._passing[spec] = found
        return found

    def total(self, bucket: _Bucket, decided: dict[str, Any] | None, column: int) -> int:
        """Aggregate `column` summed over the groups of `bucket` that pass `decided`."""
        key = (bucket, json.dumps(decided, sort_keys=True))
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self._chosen[key] = [
                row for row, held, ok in zip(self.rows, self._pass(bucket), self._pass(decided))
                if held and ok]
        column += len(self.names)
        return sum(int(row[column]) for row in chosen)


def _no_jit(session: Session) -> None:
    """Turn JIT off for the rest of this transaction (PostgreSQL). A view large enough to pass
    jit_above_cost (at 1M tickets the whole tenant came close) would have LLVM compile the
    per-row filter expressions in the leader and in each parallel worker, for a one-off query:
    measured, that never paid back (docs/decisions.md, "Cold recompute on PostgreSQL")."""
    session.execute(text("SET LOCAL jit = off"))


TICKET_FIELDS = {"id": Ticket.id, "version": Ticket.version, "status": Ticket.status,
                 "priority": Ticket.priority, "teamId": Ticket.team_id,
                 "assigneeId": Ticket.assignee_id, "requesterId": Ticket.requester_id,
                 "category": Ticket.category, "tags": Ticket.tags,
                 "isSupportRequest": Ticket.is_support_request, "createdAt": Ticket.created_at,
                 "dueAt": Ticket.due_at, "slaDueAt": Ticket.sla_due_at}


def matching_tickets(session: Session, tenant: str,
                     cells: Sequence[Cell]) -> Iterable[dict[str, Any]]:
    """Live tickets that may fall in any of `cells`, as camelCase rows (SQL narrows, Python
    decides)."""
    if not cells:
        return []
    dialect = session.get_bind().dialect.name
    scope = or_(*[and_(predicate(cell.mp.root, dialect), bucket_predicate(cell.bucket))
                  for cell in cells])
    names = list(TICKET_FIELDS)
    query = select(*TICKET_FIELDS.values()).where(*_live(tenant), scope)
    return ({**dict(zip(names, row)), "deleted": False}
            for row in session.execute(query.execution_options(yield_per=2000)))


SCORE_COLUMNS = {"createdAt": Ticket.created_at, "dueAt": Ticket.due_at,
                 "slaDueAt": Ticket.sla_due_at}


def timed_members(session: Session, tenant: str,
                  cells: Sequence[Cell]) -> dict[CellId, dict[str, int]]:
    """Per timed cell (by id), the members it must hold: `<id>:<version>` → score.

    One query: SQL evaluates each MP's predicate (a flag per MP) over the live tickets of the
    cells' buckets that some MP matches with a score, and collapses the bucket columns as
    cell_counts does; Python only files each row under the cells of its (few) column values.
    """
    out: dict[CellId, dict[str, int]] = {cell.id: {} for cell in cells}
    if not cells:
        return out
    dialect = session.get_bind().dialect.name
    mps = list({cell.mp.id: cell.mp for cell in cells}.values())
    parsed = {name: _Bucket.parse(name) for name in dict.fromkeys(c.bucket for c in cells)}
    dims = _dimensions(list(parsed.values()))
    matches = [and_(predicate(mp.root, dialect), SCORE_COLUMNS[mp.score_field].is_not(None))
               for mp in mps]
    scores = [SCORE_COLUMNS[mp.score_field] for mp in mps]
    scoped = _Rows(tenant, parsed, dialect)
    columns = [Ticket.id, Ticket.version, *dims.values(),
               *[case((match, score), else_=None) for match, score in zip(matches, scores)]]
    query = select(*[scoped.on(column) for column in columns]).select_from(scoped.rows) \
        .where(*scoped.where, scoped.on(or_(*matches)))
    width = 2 + len(dims)
    # Per distinct collapsed (team, assignee, requester, support): per MP, the cells to fill.
    targets: dict[tuple[Any, ...], list[list[dict[str, int]]]] = {}
    result = session.connection().execute(query.execution_options(yield_per=5000))
    for rows in result.partitions():
        for row in rows:
            key = tuple(row[2:width])
            fill = targets.get(key)
            if fill is None:
                group = dict(zip(dims, key))
                fill = targets[key] = [[out[c.id] for c in cells
                                        if c.mp.id == mp.id and parsed[c.bucket].holds(group)]
                                       for mp in mps]
            member = f"{row[0]}:{row[1]}"
            for score, members in zip(row[width:], fill):
                if score is not None:
                    for found in members:
                        found[member] = int(score)
    return out


def recent_outbox(session: Session, tenant: str, group: str,
                  applied_since_ms: int) -> list[tuple[int, dict[str, Any]]]:
    """Outbox rows of a group that a worker may still apply: unapplied, or applied recently."""
    query = (select(OutboxRow.id, OutboxRow.payload)
             .where(OutboxRow.tenant_id == tenant, OutboxRow.group_key == group,
                    or_(OutboxRow.applied_at.is_(None), OutboxRow.applied_at > applied_since_ms))
             .order_by(OutboxRow.id))
    return [(row_id, json.loads(payload)) for row_id, payload in session.execute(query)]


def plain_mps(cells: Sequence[Cell]) -> list[Materialized]:
    return list({c.mp.id: c.mp for c in cells if c.mp.score_field is None}.values())
