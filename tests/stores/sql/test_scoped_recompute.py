"""The recompute reads a view's tickets as disjoint per-bucket branches (UNION ALL), each through
its scope index on PostgreSQL; the counts and timed members stay what the oracle says, however the
buckets overlap."""
from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import event, select, text

from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.core.filters import SYSTEM_BY_ID
from tally.core.visibility import assignee_team_bucket, plan
from tally.services.tenants import create_tenant
from tally.stores.sql import ticket_counts as sql, ticket_members
from tally.stores.sql.db import Database
from tally.stores.sql.models import Ticket
from tally.stores.sql.conditions import leaf
from tally.core.cells import Cell
from tests.support.tokens import REALM
from tests.support.randomdata import random_tickets
from tests.support.cells import FILTERS, NOW, cells_of, in_cell, seeded_tickets, ticket_row
from tests.support.postgres import create_database, drop_database

pytestmark = pytest.mark.both_databases

TENANT = "5b1e6a9c-2d3f-4e8a-9b0c-1d2e3f4a5b6c"
ME = Principal("auth0|u2", TENANT, "realm", frozenset({"ticket_agent"}), ("t|3", "t1"))
# No "all": several kept buckets that overlap (a ticket of team t1 assigned to me is in two),
# nested ones (asgteam inside team, sr: inside plain) and a requester bucket.
BUCKETS = ("team:t|3", "team:t1", "asg:auth0|u2", assignee_team_bucket("auth0|u2", "t|3"),
           assignee_team_bucket("auth0|u2", "t1"), "req:u1", "sr:team:t0", "sr:asg:auth0|u2")


@pytest.fixture
def tickets(db_url):
    yield from seeded_tickets(db_url, TENANT, seed=23)


def _cells(buckets=BUCKETS) -> tuple[list[Cell], list]:
    return cells_of(ME, buckets)


def test_overlapping_buckets_count_each_ticket_once_per_cell(tickets):
    db, rows = tickets
    cells, windows = _cells()
    # the data has tickets in two kept buckets at once, and tickets in none
    mine = [t for t in rows if t["assigneeId"] == ME.user_id and t["teamId"] in ME.teams]
    assert mine

    with db.snapshot() as session:
        counts = sql.cell_counts(session, TENANT, cells, windows)

    assert counts == [sum(in_cell(t, cell, span) for t in rows)
                      for cell, span in zip(cells, windows)]
    assert len(set(counts)) > 5


def test_timed_members_of_overlapping_buckets(tickets):
    db, rows = tickets
    timed = list({c.id: c for c in _cells()[0] if c.mp.score_field is not None}.values())

    with db.snapshot() as session:
        members = ticket_members.timed_members(session, TENANT, timed)

    for cell in timed:
        assert members[cell.id] == {cell.mp.member(t)[0]: cell.mp.member(t)[1] for t in rows
                                    if in_cell(t, cell, None)
                                    and cell.mp.member(t) is not None}, cell
    assert sum(len(found) for found in members.values()) > 50


@pytest.mark.parametrize("value, expected", [
    ("urgent", {"plain", "both"}),  # not `x"urgent` (its JSON text holds `\"urgent"`)
    ("ur_ent", {"wild"}),  # `_` is no wildcard: `urgent` does not match
    ('x"urgent', {"quoted"}),
    ("ünï", {"unicode"}),
])
def test_tags_contain_is_exact_whatever_the_tag_text(db_url, value, expected):
    db = Database(db_url)
    tags = {"plain": ["urgent"], "both": ["vip", "urgent"], "wild": ["ur_ent"],
            "quoted": ['x"urgent'], "unicode": ["ünï"], "none": [], "prefix": ["urgently"]}
    try:
        with db.write() as session:
            session.add_all(Ticket(tenant_id=TENANT, id=name, version=1, deleted=False,
                                   tags=tag_list, is_support_request=False)
                            for name, tag_list in tags.items())
        with db.snapshot() as session:
            found = set(session.scalars(select(Ticket.id).where(
                leaf({"field": "tags", "op": "contains", "value": value},
                     session.get_bind().dialect.name))))
    finally:
        db.engine.dispose()
    assert found == expected


@pytest.mark.postgres
def test_an_agents_recompute_reads_each_branch_through_its_scope_index(postgres_server):
    server_url, template = postgres_server
    url = create_database(server_url, template)
    db = Database(url)
    rng = random.Random(20261123)
    try:
        tenant = str(uuid.uuid4())
        create_tenant(db, tenant, "scoped", REALM)
        rows = random_tickets(seed=5, n=6000, now_ms=NOW)
        for t in rows:  # 40 teams and 300 agents: the agent's view is a few % of the rows
            t["teamId"] = f"team-{rng.randrange(40)}"
            t["assigneeId"] = f"agent-{rng.randrange(300)}"
        with db.write() as session:
            session.add_all(ticket_row(tenant, t) for t in rows)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE tickets")
        agent = Principal("agent-3", tenant, "realm", frozenset({"ticket_agent"}),
                          ("team-1", "team-2", "team-3"))
        cells = [Cell(Materialized.of(SYSTEM_BY_ID[fid].definition, agent), bucket)
                 for fid in FILTERS if SYSTEM_BY_ID[fid].definition.time_condition is None
                 for bucket in plan(agent, "agent").buckets]
        statements = []

        def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
            if "FROM tickets" in statement:
                statements.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", record)
        with db.snapshot() as session:
            counts = sql.cell_counts(session, tenant, cells, [None] * len(cells))
            event.remove(db.engine, "before_cursor_execute", record)
            (statement, parameters), = statements
            # At this size PostgreSQL may rightly prefer a bitmap scan of a team's rows; with
            # bitmap and sequential scans off, each disjoint branch must still find its rows
            # through its own scope index, never by scanning the tenant.
            session.execute(text("SET LOCAL enable_bitmapscan = off"))
            session.execute(text("SET LOCAL enable_seqscan = off"))
            shape = "\n".join(session.connection().exec_driver_sql(
                "EXPLAIN " + statement, parameters).scalars())
    finally:
        db.engine.dispose()
        drop_database(url)
    assert "using ix_tickets_tenant_team" in shape, shape
    assert "using ix_tickets_tenant_assignee" in shape, shape
    assert "Seq Scan" not in shape and "ix_tickets_tenant_live" not in shape, shape
    assert counts == [sum(in_cell(t, cell, None) for t in rows) for cell in cells]
    assert max(counts) > 0
