"""Watermarks in SQL: issued in commit order, stamped on outbox rows, and what is fully applied."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from tally.services.ingest import ingest
from tally.services.tenants import create_tenant
from tally.stores.sql import watermarks
from tally.stores.sql.db import Database
from tally.stores.sql.models import OutboxRow
from tests.support import events as b
from tests.support.tokens import REALM

pytestmark = pytest.mark.both_databases

T = "7d0c8f3e-9a1b-4c2d-8e3f-4a5b6c7d8e9f"
NOW = 1_800_000_000_000


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    create_tenant(database, T, "watermarks", REALM)
    yield database
    database.engine.dispose()


def state(db):
    with db.snapshot() as session:
        return watermarks.issued(session, T), watermarks.applied(session, T)


def mark_applied(db, *stamps):
    with db.write() as session:
        session.execute(update(OutboxRow).where(OutboxRow.watermark.in_(stamps))
                        .values(applied_at=NOW))


def test_each_batch_with_changes_is_stamped_with_the_next_watermark(db):
    assert state(db) == (0, 0)
    first = ingest(db, T, b.loaded(b.created("n-1"), b.ticket("t-1", 1)), NOW)
    second = ingest(db, T, b.loaded(b.created("n-2")), NOW)
    stale = ingest(db, T, b.loaded(b.ticket("t-1", 1)), NOW)  # an old version: no change
    assert (first.watermark, second.watermark, stale.watermark) == (1, 2, 2)
    with db.snapshot() as session:
        stamps = session.execute(select(OutboxRow.id, OutboxRow.watermark)
                                 .order_by(OutboxRow.id)).all()
    assert sorted({w for _, w in stamps}) == [1, 2] and len(stamps) == 3  # two groups in batch 1
    assert set(first.outbox_ids) == {i for i, w in stamps if w == 1}


def test_applied_is_one_below_the_oldest_pending_watermark(db):
    for number in range(1, 4):
        ingest(db, T, b.loaded(b.created(f"n-{number}")), NOW)
    assert state(db) == (3, 0)
    mark_applied(db, 2)  # applied out of order: 1 still pends, so nothing is claimed
    assert state(db) == (3, 0)
    mark_applied(db, 1)
    assert state(db) == (3, 2)
    mark_applied(db, 3)
    assert state(db) == (3, 3)


def test_an_unprovisioned_tenant_is_issued_nothing(db):
    other = "5a5b6c7d-1111-4c2d-8e3f-4a5b6c7d8e9f"
    assert ingest(db, other, b.loaded(b.created("n-1")), NOW).watermark == 0
    with db.snapshot() as session:
        assert watermarks.applied(session, other) == 0
