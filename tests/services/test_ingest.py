"""Ingest: once per eventId, newest version wins, tombstones, all or nothing, an exact outbox."""
from __future__ import annotations

import json
import threading
import uuid

import pytest
from sqlalchemy import func, select

from tally.services import ingest as ingest_module
from tally.services.ingest import ingest, mark_notifications_read
from tally.stores.sql.db import Database
from tally.stores.sql.models import Notification, OutboxRow, SeenEvent, Ticket
from tests.support import events as b

pytestmark = pytest.mark.both_databases

T = "7d0c8f3e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"
NOW = 1_800_000_000_000


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.engine.dispose()


def run(db, *raw, now=NOW):
    return ingest(db, T, b.loaded(*raw), now)


def outbox(db):
    with db.snapshot() as session:
        rows = session.execute(select(OutboxRow.group_key, OutboxRow.payload)
                               .order_by(OutboxRow.id)).all()
    return [(r.group_key, json.loads(r.payload)) for r in rows]


def changes(db, group=None):
    return [c for g, p in outbox(db) if group in (None, g) for c in p["changes"]]


def count(db, model):
    with db.snapshot() as session:
        return session.scalar(select(func.count()).select_from(model))


def _row(db, model, rid):
    table = model.__table__
    with db.snapshot() as session:
        return session.execute(select(table).where(table.c.tenant_id == T,
                                                   table.c.id == rid)).one()


def ticket(db, tid):
    return _row(db, Ticket, tid)


def notification(db, nid):
    return _row(db, Notification, nid)


def test_redelivered_events_are_no_ops(db):
    batch = [b.created("n-1"), b.ticket("t-1", 1), b.read("user-1", ["n-1"])]
    first = run(db, *batch)
    second = run(db, *batch, now=NOW + 5)
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (second.accepted, second.duplicates, second.high_water) == (0, 3, None)
    assert len(outbox(db)) == 3
    assert notification(db, "n-1").updated_at == NOW


def test_a_repeated_event_id_within_one_batch_counts_once(db):
    twice = b.created("n-1")
    result = run(db, twice, b.created("n-2"), dict(twice))
    assert (result.accepted, result.duplicates) == (2, 1)
    assert count(db, SeenEvent) == 2


def test_event_ids_are_per_tenant(db):
    raw = b.created("n-1")
    run(db, raw)
    other = ingest(db, str(uuid.uuid4()), b.loaded(raw), NOW)
    assert other.accepted == 1


def test_notification_created_writes_the_row_and_its_outbox_change(db):
    result = run(db, b.created("n-1", type_="mention", priority="low"))
    assert result.outbox_ids and result.high_water == result.outbox_ids[-1]
    stored = notification(db, "n-1")
    assert (stored.user_id, stored.read, stored.deleted, stored.updated_at) == (
        "user-1", False, False, NOW)
    assert outbox(db) == [("n:user-1", {"kind": "notification", "at": NOW, "changes": [{
        "before": None, "after": {"id": "n-1", "userId": "user-1", "type": "mention",
                                  "priority": "low", "read": False, "deleted": False}}]})]


def test_notification_created_twice_under_new_event_ids_is_ignored(db):
    run(db, b.created("n-1"), b.deleted("n-1"))
    result = run(db, b.created("n-1", priority="low"), now=NOW + 1)
    assert result.accepted == 1 and result.high_water is None
    assert notification(db, "n-1").deleted is True


def test_changes_of_one_batch_are_grouped_per_user(db):
    run(db, b.created("n-1", "ann"), b.created("n-2", "bob"), b.created("n-3", "ann"),
        b.deleted("n-1"))
    groups = [(g, len(p["changes"])) for g, p in outbox(db)]
    assert sorted(groups) == [("n:ann", 3), ("n:bob", 1)]


def test_read_ignores_unknown_ids_and_other_users_notifications(db):
    run(db, b.created("n-1", "ann"), b.created("n-2", "bob"))
    run(db, b.read("ann", ["n-1", "n-2", "missing"]), now=NOW + 10)
    assert notification(db, "n-1").read is True
    assert notification(db, "n-2").read is False
    [change] = changes(db)[2:]
    assert (change["before"]["read"], change["after"]["read"]) == (False, True)
    assert outbox(db)[-1][1]["at"] == NOW + 10


def test_reading_read_or_deleted_notifications_changes_nothing(db):
    run(db, b.created("n-1"), b.created("n-2"), b.read("user-1", ["n-1"]), b.deleted("n-2"))
    before = len(outbox(db))
    result = run(db, b.read("user-1", ["n-1", "n-2"]), b.deleted("n-2"), b.deleted("nope"))
    assert result.accepted == 3 and result.high_water is None
    assert len(outbox(db)) == before


def test_mark_notifications_read_all_marks_only_that_users_unread(db):
    run(db, b.created("n-1"), b.created("n-2"), b.created("n-3", "bob"))
    with db.write() as session:
        outbox_id = mark_notifications_read(session, T, "user-1", None, NOW + 7)
        again = mark_notifications_read(session, T, "user-1", None, NOW + 8)
    assert again is None
    group, payload = outbox(db)[-1]
    assert group == "n:user-1" and payload["at"] == NOW + 7
    assert sorted(c["after"]["id"] for c in payload["changes"]) == ["n-1", "n-2"]
    assert outbox_id == _last_outbox_id(db)
    assert [notification(db, n).read for n in ("n-1", "n-2", "n-3")] == [True, True, False]
    assert notification(db, "n-1").updated_at == NOW + 7


def test_mark_notifications_read_with_no_ids_does_nothing(db):
    run(db, b.created("n-1"))
    with db.write() as session:
        assert mark_notifications_read(session, T, "user-1", [], NOW) is None
    assert notification(db, "n-1").read is False


def test_updated_at_never_goes_back(db):
    run(db, b.created("n-1"), now=NOW)
    with db.write() as session:
        mark_notifications_read(session, T, "user-1", ["n-1"], NOW - 60_000)
    assert notification(db, "n-1").updated_at == NOW


def _last_outbox_id(db):
    with db.snapshot() as session:
        return session.scalar(select(func.max(OutboxRow.id)))


def test_older_or_equal_ticket_versions_are_ignored(db):
    run(db, b.ticket("t-1", 5, status="pending"))
    result = run(db, b.ticket("t-1", 4, status="closed"), b.ticket("t-1", 5, status="open"))
    assert result.accepted == 2 and result.high_water is None
    assert (ticket(db, "t-1").version, ticket(db, "t-1").status) == (5, "pending")


def test_a_newer_ticket_version_records_before_and_after(db):
    run(db, b.ticket("t-1", 1, status="open"))
    run(db, b.ticket("t-1", 2, status="resolved", tags=["b", "a"]))
    first, second = changes(db, "tickets")
    assert first["before"] is None and first["after"]["version"] == 1
    assert second["before"] == first["after"]
    assert second["after"] == {"id": "t-1", "version": 2, "deleted": False, "status": "resolved",
                               "priority": "medium", "teamId": "team-a",
                               "assigneeId": "agent-1", "requesterId": "user-1",
                               "category": "it", "tags": ["a", "b"],
                               "isSupportRequest": False, "createdAt": 1_752_150_896_789,
                               "dueAt": None, "slaDueAt": None}


def test_a_version_bump_alone_is_owed_because_timed_cells_key_members_by_version(db):
    run(db, b.ticket("t-1", 1))
    result = run(db, b.ticket("t-1", 2))
    assert result.high_water is not None
    assert ticket(db, "t-1").version == 2
    bump = changes(db, "tickets")[-1]
    assert (bump["before"]["version"], bump["after"]["version"]) == (1, 2)


def test_delete_keeps_a_tombstone_that_stops_stale_upserts(db):
    run(db, b.ticket("t-1", 1))
    run(db, b.ticket_deleted("t-1", 3))
    run(db, b.ticket("t-1", 2, status="closed"), b.ticket("t-1", 3, status="closed"))
    stored = ticket(db, "t-1")
    assert (stored.deleted, stored.version, stored.status) == (True, 3, "open")
    deletion = changes(db, "tickets")[-1]
    assert deletion["before"]["deleted"] is False
    assert deletion["after"] == dict(deletion["before"], deleted=True, version=3)
    assert len(changes(db, "tickets")) == 2


def test_a_newer_upsert_resurrects_a_tombstone(db):
    run(db, b.ticket_deleted("t-1", 3))
    assert ticket(db, "t-1").deleted is True and changes(db) == []
    run(db, b.ticket("t-1", 2), b.ticket("t-1", 4, status="pending"))
    stored = ticket(db, "t-1")
    assert (stored.deleted, stored.version, stored.status) == (False, 4, "pending")
    [change] = changes(db, "tickets")
    assert change["before"]["deleted"] is True and change["after"]["deleted"] is False


def test_a_delete_older_than_the_stored_version_is_ignored(db):
    run(db, b.ticket("t-1", 5))
    run(db, b.ticket_deleted("t-1", 4))
    assert ticket(db, "t-1").deleted is False
    run(db, b.ticket_deleted("t-1", 5))
    assert ticket(db, "t-1").deleted is True


def test_a_failing_event_leaves_nothing_half_written(db, monkeypatch):
    def explode(batch, data):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(ingest_module.HANDLERS, "notification.deleted", explode)
    with pytest.raises(RuntimeError):
        run(db, b.created("n-1"), b.ticket("t-1", 1), b.deleted("n-1"))
    assert [count(db, m) for m in (SeenEvent, Notification, Ticket, OutboxRow)] == [0, 0, 0, 0]


def test_concurrent_ingests_of_the_same_rows_record_each_change_once(db):
    # Given eight threads that each create the same notification and upsert the same ticket
    barrier = threading.Barrier(8)
    errors = []

    def worker(version):
        try:
            barrier.wait()
            run(db, b.created("n-1"), b.ticket("t-1", version, priority=PRIORITY[version % 2]))
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(v,)) for v in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then one creation in all, and the ticket's changes chain from nothing to the stored row
    assert errors == []
    assert len(changes(db, "n:user-1")) == 1
    chain = [(c["before"] and unversioned(c["before"]), unversioned(c["after"]))
             for c in changes(db, "tickets")]
    assert chain[0][0] is None
    for earlier, later in zip(chain, chain[1:]):
        assert later[0] == earlier[1]
    stored = ticket(db, "t-1")
    assert stored.version == 8 and chain[-1][1]["priority"] == stored.priority == PRIORITY[0]


PRIORITY = ("low", "high")


def unversioned(row):
    return {k: v for k, v in row.items() if k != "version"}


class Deadlock(Exception):
    sqlstate = "40P01"


def test_a_batch_the_database_aborts_for_a_deadlock_is_run_again(db, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from tally.services import ingest as module

    real, calls = module._ingest_once, []

    def conflicted_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("INSERT …", {}, Deadlock("deadlock detected"))
        return real(*args)

    monkeypatch.setattr(module, "_ingest_once", conflicted_once)
    result = run(db, b.created("n-1", "ann"))
    assert (len(calls), result.accepted) == (2, 1)
    assert len(outbox(db)) == 1


def test_other_database_errors_are_not_retried(db, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from tally.services import ingest as module

    calls = []

    def down(*args):
        calls.append(args)
        raise OperationalError("connect", {}, ConnectionError("connection refused"))

    monkeypatch.setattr(module, "_ingest_once", down)
    with pytest.raises(OperationalError):
        run(db, b.created("n-1", "ann"))
    assert len(calls) == 1
