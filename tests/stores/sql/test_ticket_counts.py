"""The cold path's SQL: one grouped query for many cells, and timed members evaluated in SQL."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event, text

from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.core.visibility import assignee_team_bucket
from tally.stores.sql import ticket_counts as sql, ticket_members
from tally.core.cells import Cell
from tests.support.cells import NOW, cells_of, in_cell, oracle_checked_counts, seeded_tickets

pytestmark = pytest.mark.both_databases

TENANT = "7d0c1f2e-3a4b-4c5d-8e6f-708192a3b4c5"
ME = Principal("auth0|u2", TENANT, "realm", frozenset({"ticket_agent"}), ("t|3", "t1"))
# Every kind of bucket at once, support variants and ids holding '|' included.
BUCKETS = ("all", "team:t|3", "team:t1", "asg:auth0|u2", assignee_team_bucket("auth0|u2", "t|3"),
           assignee_team_bucket("auth0|u2", "t1"), "req:u1", "sr:all", "sr:team:t0",
           "sr:asg:auth0|u2")


@pytest.fixture
def tickets(db_url):
    yield from seeded_tickets(db_url, TENANT, seed=11)


def _cells() -> tuple[list[Cell], list]:
    return cells_of(ME, BUCKETS)


def test_one_grouped_query_counts_every_cell_as_the_oracle_does(tickets):
    db, rows = tickets
    cells, windows = _cells()

    with db.snapshot() as session:
        counts = sql.cell_counts(session, TENANT, cells, windows)

    expected = [sum(in_cell(t, cell, span) for t in rows) for cell, span in zip(cells, windows)]
    assert counts == expected
    assert any(counts) and len(set(counts)) > 5  # the data exercises the cells


def test_timed_members_are_what_the_worker_would_hold(tickets):
    db, rows = tickets
    timed = list({cell.id: cell for cell in _cells()[0]
                  if cell.mp.score_field is not None}.values())

    with db.snapshot() as session:
        members = ticket_members.timed_members(session, TENANT, timed)

    for cell in timed:
        want = {cell.mp.member(t)[0]: cell.mp.member(t)[1] for t in rows
                if in_cell(t, cell, None) and cell.mp.member(t) is not None}
        assert members[cell.id] == want, cell
    assert sum(len(found) for found in members.values()) > 50


HOUR = 3_600_000
# Conditions on the columns the query groups by (status, priority, the support flag, the ids
# the buckets name) mixed with ones it tests per row (tags, category, other ids, nulls of a
# collapsed id column), at the top and nested, with and without a window.
MIXED = [
    ({"all": [{"field": "status", "op": "in", "value": ["open", "pending"]},
              {"field": "tags", "op": "contains", "value": "vip"}]}, None),
    ({"any": [{"field": "status", "op": "eq", "value": "open"},
              {"field": "tags", "op": "contains", "value": "bug"}]}, None),
    ({"all": [{"field": "teamId", "op": "ne", "value": "t1"},
              {"field": "teamId", "op": "not_in", "value": ["t2", "t|3"]},
              {"field": "isSupportRequest", "op": "eq", "value": False}]}, None),
    ({"all": [{"field": "assigneeId", "op": "in", "value": ["auth0|u2", "u0"]},
              {"field": "priority", "op": "ne", "value": "low"}]}, "createdAt"),
    ({"all": [{"field": "teamId", "op": "is_null"},
              {"field": "status", "op": "not_in", "value": ["closed"]}]}, "dueAt"),
    ({"all": [{"field": "status", "op": "is_null"}]}, None),
    ({"all": [{"any": [{"field": "priority", "op": "eq", "value": "high"},
                       {"field": "assigneeId", "op": "not_null"}]},
              {"any": [{"field": "teamId", "op": "eq", "value": "t1"},
                       {"field": "status", "op": "eq", "value": "resolved"}]},
              {"field": "category", "op": "eq", "value": "hardware"}]}, "slaDueAt"),
    ({"all": []}, None),
    ({"all": [{"field": "requesterId", "op": "eq", "value": "u1"}]}, None),
]


def _mixed_cells() -> tuple[list[Cell], list]:
    cells, windows = [], []
    for root, score in MIXED:
        mp = Materialized(root, score)
        for bucket in BUCKETS:
            cells.append(Cell(mp, bucket))
            windows.append((NOW - 24 * HOUR, NOW + 12 * HOUR) if score else None)
    return cells, windows


def test_what_the_groups_decide_counts_as_the_oracle_does(tickets):
    db, rows = tickets
    counts = oracle_checked_counts(db, TENANT, rows, *_mixed_cells())
    assert len(set(counts)) > 10


def test_conditions_on_grouped_columns_are_not_tested_per_row(tickets):
    db, _rows = tickets
    cells, windows = _cells()
    statements = []

    def record(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        if "FROM tickets" in statement:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.snapshot() as session:
            sql.cell_counts(session, TENANT, cells, windows)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    (statement,), targets = statements, {(c.mp.id, w) for c, w in zip(cells, windows)}
    filters = re.findall(r"FILTER \(WHERE (.*?)\) AS", statement)
    # status, priority and the support flag are grouped by, never tested in an aggregate
    assert filters and not [f for f in filters if re.search(r"\.(status|priority) ", f)]
    assert len(filters) < len(targets)


def test_the_recompute_runs_without_jit_on_postgresql(tickets):
    db, _rows = tickets
    if db.is_sqlite:
        pytest.skip("JIT is PostgreSQL's")
    with db.snapshot() as session:
        assert session.execute(text("SHOW jit")).scalar_one() == "on"  # the server's default
        sql.cell_counts(session, TENANT, *_cells())
        assert session.execute(text("SHOW jit")).scalar_one() == "off"
    with db.snapshot() as session:  # for that transaction only
        assert session.execute(text("SHOW jit")).scalar_one() == "on"
