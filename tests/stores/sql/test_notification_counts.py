"""The notification SQL queries on SQLite and PostgreSQL: one aggregate query, keyset pages."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event

from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, NotificationCounts
from tally.stores.sql import notification_counts as sql_counts
from tally.stores.sql.db import Database
from tests.support import factories
from tests.support.factories import BASE_MS, MIX

pytestmark = pytest.mark.both_databases

T = str(uuid.uuid4())


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.engine.dispose()


def counts_of(db, user="user-1", tenant=T):
    with db.snapshot() as session:
        return sql_counts.notification_counts(session, tenant, user)


def test_counts_break_down_unread_live_notifications(db):
    factories.notifications(db, T, "user-1", MIX)
    counts = counts_of(db)
    assert (counts.total, counts.unread) == (6, 4)
    assert counts.by_type == dict.fromkeys(NOTIFICATION_TYPES, 0) | {
        "assignment": 1, "comment": 2, "slaBreach": 1}
    assert counts.by_priority == {"critical": 1, "high": 2, "medium": 0, "low": 1}
    assert list(counts.by_priority) == list(PRIORITIES)


def test_last_updated_includes_deleted_rows(db):
    factories.notifications(db, T, "user-1", MIX)
    assert counts_of(db).last_updated == BASE_MS + 9_000


def test_a_user_without_notifications_counts_zero_and_never_updated(db):
    assert counts_of(db) == NotificationCounts.empty()


def test_counts_are_scoped_to_tenant_and_user(db):
    factories.notifications(db, T, "user-1", MIX)
    factories.notification(db, T, "user-2")
    factories.notification(db, str(uuid.uuid4()), "user-1")
    assert counts_of(db, "user-2").unread == 1
    assert counts_of(db).unread == 4


def test_counts_take_exactly_one_query(db):
    statements = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    counts_of(db)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_group_outbox_ids_lists_applied_and_pending_rows_of_that_group_only(db):
    applied = factories.outbox_row(db, T, "n:user-1", applied_at=BASE_MS)
    pending = factories.outbox_row(db, T, "n:user-1")
    factories.outbox_row(db, T, "n:user-2")
    factories.outbox_row(db, str(uuid.uuid4()), "n:user-1")
    with db.snapshot() as session:
        assert sql_counts.group_outbox_ids(session, T, "n:user-1") == [applied, pending]
        assert sql_counts.group_has_pending(session, T, "n:user-1")
        assert not sql_counts.group_has_pending(session, T, "n:user-3")


def test_notification_users_lists_everyone_with_rows(db):
    factories.notification(db, T, "b")
    factories.notification(db, T, "a", deleted=True)
    factories.notification(db, str(uuid.uuid4()), "c")
    with db.snapshot() as session:
        assert sql_counts.notification_users(session, T) == ["a", "b"]


def page(db, limit, **kwargs):
    with db.snapshot() as session:
        return sql_counts.list_notifications(session, T, "user-1", limit, **kwargs)


def test_list_is_newest_first_and_breaks_ties_by_id(db):
    factories.notification(db, T, id="a", created_at=5)
    factories.notification(db, T, id="b", created_at=5)
    factories.notification(db, T, id="c", created_at=7)
    factories.notification(db, T, id="d", created_at=9, deleted=True)
    assert [r.id for r in page(db, 10)] == ["c", "b", "a"]
    assert [r.id for r in page(db, 10, after=(5, "b"))] == ["a"]
    assert [r.id for r in page(db, 10, after=(7, "c"))] == ["b", "a"]


def test_list_filters_by_read_state_and_type(db):
    factories.notifications(db, T, "user-1", MIX)
    assert len(page(db, 10)) == 6
    assert {r.type for r in page(db, 10, unread=True)} == {"assignment", "comment", "slaBreach"}
    assert {r.type for r in page(db, 10, unread=False)} == {"mention", "approval"}
    assert [r.priority for r in page(db, 10, type_="comment")] == ["low", "high"]
    assert len(page(db, 2)) == 2
