"""The cold path's SQL: one grouped query for many cells, and timed members evaluated in SQL."""
from __future__ import annotations

import pytest

from tally.counting.model import Principal
from tally.counting.visibility import assignee_team_bucket
from tally.stores import sql_ticket_counts as sql
from tally.stores.ticket_counters import Cell
from tests.stores.cells import cells_of, in_cell, seeded_tickets

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
    timed = list({cell.group: cell for cell in _cells()[0]
                  if cell.mp.score_field is not None}.values())

    with db.snapshot() as session:
        members = sql.timed_members(session, TENANT, timed)

    for cell in timed:
        want = {cell.mp.member(t)[0]: cell.mp.member(t)[1] for t in rows
                if in_cell(t, cell, None) and cell.mp.member(t) is not None}
        assert members[cell.group] == want, cell
    assert sum(len(found) for found in members.values()) > 50
