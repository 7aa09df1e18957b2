"""PostgreSQL plans what tally runs with its indexes: the cold path of a narrow view and every
outbox query of the apply, sweep and prune read only their rows, never the whole table.

A seeded database (five tenants, 30,000 tickets, 30,000 outbox rows, statistics analysed) gets
cold ticket reads of a user and of an agent over HTTP and the outbox queries; each statement is
captured as the app sends it and EXPLAINed. docs/deployment.md has the timings at 380,000 tickets.
"""
from __future__ import annotations

import json
import random
import uuid

import pytest
from sqlalchemy import event, insert, select

from tally.settings import Test
from tally.app import create_app
from tally.core.filters import SYSTEM_FILTERS
from tally.services import outbox
from tally.services.tenants import create_tenant
from tally.stores.sql import notification_counts as sql_counts
from tally.stores.sql import ticket_members
from tally.stores.sql.models import OutboxRow, Ticket
from tests.support.tokens import REALM
from tests.support.postgres import create_database, drop_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NOW = 1_800_000_000_000
TEAMS = [f"team-{i}" for i in range(40)]
AGENTS = [f"agent-{i}" for i in range(300)]
REQUESTERS = [f"user-{i}" for i in range(5000)]


@pytest.fixture
def app(postgres_server, redis_url, realms_file, var_dir):
    server_url, template = postgres_server
    url = create_database(server_url, template)
    built = create_app(Test(), DATABASE_URL=url, REDIS_URL=redis_url, REALMS_FILE=realms_file,
                       VAR_DIR=var_dir)
    yield built
    built.extensions["tally"].db.engine.dispose()
    drop_database(url)


def seed(db, rng: random.Random) -> str:
    """Five tenants (the first with half the tickets), applied and pending outbox rows."""
    tenants = [str(uuid.uuid4()) for _ in range(5)]
    for tenant in tenants:
        create_tenant(db, tenant, "plans", REALM)
    tickets, rows = [], []
    for number in range(30_000):
        tickets.append(dict(
            tenant_id=tenants[0] if number % 2 else rng.choice(tenants[1:]), id=f"T{number}",
            version=1, deleted=rng.random() < 0.03, status=rng.choice(("open", "closed")),
            priority=rng.choice(("critical", "low")), team_id=rng.choice(TEAMS),
            assignee_id=rng.choice(AGENTS), requester_id=rng.choice(REQUESTERS),
            category=None, tags=[], is_support_request=rng.random() < 0.4,
            created_at=NOW - rng.randint(0, 10**9), due_at=NOW + rng.randint(-10**8, 10**8),
            sla_due_at=None))
        at = NOW - rng.randint(0, 2_000_000)
        rows.append(dict(tenant_id=rng.choice(tenants), group_key="tickets", payload="{}",
                         created_at=at, applied_at=None if number % 100 == 0 else at + 50))
    with db.engine.begin() as connection:
        connection.execute(insert(Ticket), tickets)
        connection.execute(insert(OutboxRow), rows)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE")
    return tenants[0]


def plans(db, statements) -> list[str]:
    """EXPLAIN of each captured SELECT, one text per statement."""
    out = []
    with db.engine.connect() as connection:
        for statement, parameters in statements:
            lines = connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars()
            out.append("\n".join(lines))
    return out


class Capture:
    """The SELECTs an engine sends while active, with their parameters."""

    def __init__(self, engine):
        self.engine, self.statements = engine, []

    def __enter__(self) -> "Capture":
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, parameters))

    def on(self, table: str) -> list[tuple[str, dict]]:
        return [(s, p) for s, p in self.statements if f"FROM {table}" in s]


def test_cold_reads_of_narrow_views_and_outbox_queries_use_their_indexes(app, headers):
    svc = app.extensions["tally"]
    tenant = seed(svc.db, random.Random(20261123))
    client = app.test_client()
    ids = [spec.id for spec in SYSTEM_FILTERS]
    views = {"user": headers("user-7", ("ticket_user",), tenant=tenant),
             "agent": headers("agent-3", ("ticket_agent",), TEAMS[:3], tenant=tenant)}
    captured = {}
    # When a user and an agent read every system filter cold
    for view, caller in views.items():
        with Capture(svc.db.engine) as capture:
            answer = client.post(f"/api/v2/ticketing/ticket/count?type={view}&module=ticketing",
                                 json={"filterIds": ids}, headers=caller)
        assert answer.status_code == 200 and answer.headers["X-Count-Source"] == "recomputed"
        captured[view] = plans(svc.db, capture.on("tickets"))
    # ... and the apply, sweep and prune run their outbox queries
    with Capture(svc.db.engine) as capture:
        outbox.pending_tenants(svc.db, NOW)
        high = outbox.high_water(svc.db, tenant)
        outbox.backlog(svc.db, NOW)
        with svc.db.snapshot() as session:
            session.execute(outbox._pending(tenant).where(
                OutboxRow.id > 0, OutboxRow.id <= high).order_by(OutboxRow.id).limit(500)).all()
            sql_counts.group_has_pending(session, tenant, "tickets")
            ticket_members.recent_outbox(session, tenant, "tickets", NOW - 240_000)
            session.execute(select(OutboxRow.id, OutboxRow.tenant_id).where(
                OutboxRow.applied_at.is_not(None), OutboxRow.applied_at < NOW - 900_000)
                .order_by(OutboxRow.id).limit(1000)).all()
    outbox_plans = plans(svc.db, capture.on("outbox"))

    # Then the user's tickets come from the requester index, the agent's from the team and
    # assignee indexes, and no outbox query scans the whole table
    assert captured["user"] and all("ix_tickets_tenant_requester" in plan
                                    and "Seq Scan" not in plan for plan in captured["user"])
    assert captured["agent"] and all("ix_tickets_tenant_team" in plan
                                     and "ix_tickets_tenant_assignee" in plan
                                     and "Seq Scan" not in plan for plan in captured["agent"])
    assert len(outbox_plans) == 7, json.dumps(outbox_plans)
    assert all("Seq Scan" not in plan for plan in outbox_plans), outbox_plans
