"""Ticket cells from SQL: one conditional-aggregate query answers every cell of a request."""
from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy import and_, func, select, text
from sqlalchemy.orm import Session

from tally.core.cells import Cell
from tally.stores.sql.conditions import predicate, window
from tally.stores.sql.ticket_grouping import (ID_ATTRS, KEYED_DIMENSIONS, Groups, dimensions,
                                              raw_dimensions, split)
from tally.stores.sql.ticket_scope import Bucket, ScopedRows

GROUPING_WORK_MEM = "32MB"


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
    parsed = {name: Bucket.parse(name) for name in names}
    raw: set[str] = set()
    for cell in cells:
        raw_dimensions(cell.mp.root, raw)
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
        decided, rest = split(cell.mp.root, keyed)
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
    scoped = ScopedRows(tenant, parsed, dialect)
    dims = {name: scoped.on(column)
            for name, column in dimensions(list(parsed.values()), raw).items()}
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
    groups = Groups(list(dims), session.execute(query).all())
    counts = []
    for cell, span in zip(cells, windows):
        decided, column = targets[(cell.mp.id, span)]
        counts.append(groups.total(parsed[cell.bucket], decided, column))
    return counts


def _no_jit(session: Session) -> None:
    """Turn JIT off for the rest of this transaction (PostgreSQL). A view large enough to pass
    jit_above_cost (at 1M tickets the whole tenant came close) would have LLVM compile the
    per-row filter expressions in the leader and in each parallel worker, for a one-off query:
    measured, that never paid back (docs/decisions.md, "Cold recompute on PostgreSQL")."""
    session.execute(text("SET LOCAL jit = off"))
