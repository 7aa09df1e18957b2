"""Which live tickets a set of scope buckets covers (the bucket names of tally.core.visibility),
and where a query over them reads its rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, and_, or_, select, true, union_all
from sqlalchemy.sql.visitors import replacement_traverse

from tally.stores.sql.models import Ticket

SUPPORT = "sr:"


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


# The id column each Bucket attribute names.
ID_COLUMNS = {"team": Ticket.team_id, "assignee": Ticket.assignee_id,
              "requester": Ticket.requester_id}


def live(tenant: str) -> list[ColumnElement[bool]]:
    return [Ticket.tenant_id == tenant, Ticket.deleted.is_(False)]


@dataclass(frozen=True)
class Bucket:
    """A bucket name parsed into the column values a ticket needs to be counted in it."""

    support: bool
    team: str | None = None
    assignee: str | None = None
    requester: str | None = None

    @classmethod
    def parse(cls, bucket: str) -> "Bucket":
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

    def within(self, other: "Bucket") -> bool:
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


def _scope(parsed: dict[str, Bucket]) -> list[ColumnElement[bool]]:
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


class ScopedRows:
    """Where a query over the live tickets of some buckets reads them (`rows`, filtered by
    `where`), and `on`, which points an expression over Ticket's columns at those rows.

    On PostgreSQL, a UNION ALL of the branches of _scope made disjoint: each is a key range of one
    scope index (migration 0002), and each branch's rows group apart, where one bitmap OR fed a
    sort of every row. Covering indexes would make each branch index-only; they were measured
    and left out (docs/benchmarks.md, "Cold recompute"). SQLite gains nothing from branches:
    the table, filtered by their OR.
    """

    def __init__(self, tenant: str, parsed: dict[str, Bucket], dialect: str):
        scope = _scope(parsed)
        self.rows: Any = Ticket.__table__
        self.where = [*live(tenant), or_(*scope)]
        if dialect == "postgresql" and len(scope) > 1:
            self.rows = union_all(*[select(Ticket.__table__).where(*live(tenant), branch)
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
