"""A batch is applied in a few statements, yet exactly as its events one by one would be."""
from __future__ import annotations

import json
import random
import uuid

import pytest
from sqlalchemy import event, select

from tally.services.ingest import ingest
from tally.stores.sql.db import Database
from tally.stores.sql.models import Notification, OutboxRow, Ticket
from tests.support import events as b

pytestmark = pytest.mark.both_databases

T = "5a6b7c8d-1e2f-4a3b-9c4d-5e6f7a8b9c0d"
NOW = 1_800_000_000_000
USERS = ("ann", "bob", "cy")
TEAMS = ("team-a", "team-b")


@pytest.fixture
def make_db(db_url):
    """Engines on the test's database (two of them act as two web processes)."""
    made = []

    def build():
        database = Database(db_url)
        made.append(database)
        return database

    yield build
    for database in made:
        database.engine.dispose()


def random_events(seed: int, count: int) -> list[dict]:
    """Events that hit the same rows again and again within a batch: creates, reads, deletes and
    recreations of notifications; new, stale, repeated and deleted ticket versions; redeliveries
    and ids no row has."""
    rng = random.Random(seed)
    versions: dict[str, int] = {}
    sent: list[dict] = []
    out = []
    for _ in range(count):
        roll = rng.random()
        nid, tid = f"n-{rng.randrange(12)}", f"t-{rng.randrange(10)}"
        if roll < 0.2:
            raw = b.created(nid, rng.choice(USERS), priority=rng.choice(("low", "high")))
        elif roll < 0.3:
            raw = b.read(rng.choice(USERS), [f"n-{rng.randrange(14)}" for _ in range(3)])
        elif roll < 0.35:
            raw = b.deleted(nid)
        elif roll < 0.7:
            version = versions.get(tid, 0) + rng.choice((-1, 0, 1, 1, 2))
            versions[tid] = max(versions.get(tid, 0), version)
            raw = b.ticket(tid, max(version, 0), status=rng.choice(("open", "closed")),
                           teamId=rng.choice(TEAMS), tags=rng.sample(["a", "b", "c"], 2))
        elif roll < 0.8:
            raw = b.ticket_deleted(tid, max(0, versions.get(tid, 0) + rng.choice((-1, 0, 1))))
        else:
            raw = dict(rng.choice(sent)) if sent else b.created("n-0")
        sent.append(raw)
        out.append(raw)
    return out


def stored(db, tenant: str = T) -> dict:
    """A tenant's tickets and notifications, and per group the changes owed, in outbox order."""
    with db.snapshot() as session:
        tickets = {r.id: tuple(r)[1:] for r in session.execute(
            select(Ticket.__table__).where(Ticket.tenant_id == tenant))}
        notes = {r.id: tuple(r)[1:] for r in session.execute(
            select(Notification.__table__).where(Notification.tenant_id == tenant))}
        rows = session.execute(select(OutboxRow.group_key, OutboxRow.payload)
                               .where(OutboxRow.tenant_id == tenant).order_by(OutboxRow.id)).all()
    owed: dict[str, list] = {}
    for group, payload in rows:
        owed.setdefault(group, []).extend(json.loads(payload)["changes"])
    return {"tickets": tickets, "notifications": notes, "owed": owed}


def per_ticket(changes: list[dict]) -> dict[str, list]:
    """Ticket changes in order per ticket (the order across tickets carries no meaning)."""
    out: dict[str, list] = {}
    for change in changes:
        row = change["after"] or change["before"]
        out.setdefault(row["id"], []).append(change)
    return out


def as_sets(owed: dict) -> dict:
    """Per group, the changes owed as a sorted list (order ignored)."""
    return {group: sorted(json.dumps(c, sort_keys=True) for c in changes)
            for group, changes in owed.items()}


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_one_batch_equals_its_events_ingested_one_by_one(make_db, seed):
    # Given the same random events, for one tenant as one batch, for another one call per event
    db, one_by_one = make_db(), str(uuid.uuid4())
    events = random_events(seed, 160)
    result = ingest(db, T, b.loaded(*events), NOW)
    accepted = sum(ingest(db, one_by_one, b.loaded(raw), NOW).accepted for raw in events)
    # Then the rows are the same, the same events count, and each group owes the same changes
    batched, single = stored(db, T), stored(db, one_by_one)
    assert result.accepted == accepted
    assert batched["tickets"] == single["tickets"]
    assert batched["notifications"] == single["notifications"]
    assert (per_ticket(batched["owed"].pop("tickets", []))
            == per_ticket(single["owed"].pop("tickets", [])))
    # (a read's changes get an outbox row of their own, so across a user's rows order differs)
    assert as_sets(batched["owed"]) == as_sets(single["owed"])
    assert len(batched["tickets"]) > 5 and len(batched["notifications"]) > 5


def test_a_big_batch_costs_a_few_statements_not_one_per_event(make_db):
    # Given 1,200 events over 300 new tickets, their updates, notifications and reads
    db = make_db()
    events = [b.ticket(f"t-{i}", 1) for i in range(300)]
    events += [b.ticket(f"t-{i}", 2, status="closed") for i in range(300)]
    events += [b.created(f"n-{i}", USERS[i % 3]) for i in range(300)]
    events += [b.read(USERS[i % 3], [f"n-{i}"]) for i in range(300)]
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split()[0])

    event.listen(db.engine, "before_cursor_execute", count)
    # When they are ingested as one call
    result = ingest(db, T, b.loaded(*events), NOW)
    # Then every event counted, in a number of statements that does not grow with the events
    assert result.accepted == 1200
    assert len(statements) <= 20, statements
    with db.snapshot() as session:
        closed = session.scalars(select(Ticket.status).where(Ticket.tenant_id == T)).all()
        read = session.scalars(select(Notification.read)).all()
    assert set(closed) == {"closed"} and len(closed) == 300
    assert all(read) and len(read) == 300


def test_a_row_a_concurrent_batch_commits_first_is_read_and_the_events_run_again(
        make_db, db_url, monkeypatch):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: no batch can commit in between")
    # Given a batch that creates t-1, and another batch committing t-1 at version 3 just after
    # the first locked the rows it found (none) and before it inserted its own
    from tally.stores.sql import locked_rows

    db, other = make_db(), make_db()
    real_insert = locked_rows.LockedRows.insert_new
    raced = []

    def insert_after_a_rival(rows):
        if rows.table.name == "tickets" and not raced:
            raced.append("rival")  # the rival's own insert goes straight through
            ingest(other, T, b.loaded(b.ticket("t-1", 3, status="pending")), NOW)
        return real_insert(rows)

    monkeypatch.setattr(locked_rows.LockedRows, "insert_new", insert_after_a_rival)
    # When the first batch upserts t-1 at versions 2 (stale now) and 4
    ingest(db, T, b.loaded(b.ticket("t-1", 2), b.ticket("t-1", 4, status="closed")), NOW)
    # Then its changes start from the rival's row: the stale version is ignored
    owed = [c for group, changes in stored(db)["owed"].items() for c in changes
            if group == "tickets"]
    assert [(c["before"] and c["before"]["version"], c["after"]["version"]) for c in owed] == [
        (None, 3), (3, 4)]
    with db.snapshot() as session:
        assert session.execute(select(Ticket.version, Ticket.status)).one() == (4, "closed")


def test_a_batch_of_new_notifications_reads_no_rows_before_inserting_them(make_db):
    # Given a stored notification n-0, and a batch creating n-0 again (a new eventId) and n-1..n-3
    db = make_db()
    ingest(db, T, b.loaded(b.created("n-0", "ann")), NOW)
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()[:4]))

    event.listen(db.engine, "before_cursor_execute", record)
    # When it is ingested
    result = ingest(db, T, b.loaded(*[b.created(f"n-{i}", "bob") for i in range(4)]), NOW + 1)
    # Then the new rows went in without a lock-and-read first; only n-0, found stored by the
    # insert, was read afterwards, and its creation changed nothing
    selects = [s for s in statements if s.startswith("SELECT")]
    assert len(selects) == 1 and "notifications" in selects[0]
    assert statements.index(selects[0]) > next(
        i for i, s in enumerate(statements) if s.startswith("INSERT INTO notifications"))
    assert result.accepted == 4
    owed = stored(db)["owed"]
    assert [c["after"]["id"] for c in owed["n:bob"]] == ["n-1", "n-2", "n-3"]
    with db.snapshot() as session:
        assert session.scalars(select(Notification.user_id).where(
            Notification.id == "n-0")).one() == "ann"
