"""Applying the outbox on a real redis-server: once per row, crash-safe, rebuild-aware, pruned."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tally.core.clock import epoch_ms
from tally.services import notifications
from tally.errors import RebuildBusy, StoreUnavailable
from tally.services import outbox
from tally.core.deltas import outbox_delta
from tally.services.ingest import ingest
from tally.dev.launcher import free_port
from tally.stores import keys
from tally.stores.sql import notification_counts as sql_counts
from tally.stores.sql.models import OutboxRow
from tests.support import events as b

pytestmark = pytest.mark.both_databases


@pytest.fixture
def svc(app):
    return app.extensions["tally"]


def post(svc, tenant, *raw, now=None):
    return ingest(svc.db, tenant, b.loaded(*raw), now or epoch_ms(svc.clock()))


def warm(svc, tenant, *users):
    for user in users:
        assert notifications.rebuild_user(svc, tenant, user)


def redis_counts(svc, tenant, user):
    return svc.counters.read_notifications(tenant, user)


def sql(svc, tenant, user):
    with svc.db.snapshot() as session:
        return sql_counts.notification_counts(session, tenant, user)


def pending(svc):
    return outbox.backlog(svc.db)[0]


def test_pending_rows_reach_warm_counters_and_are_marked(svc, tenant_id):
    warm(svc, tenant_id, "ann")
    post(svc, tenant_id, b.created("n-1", "ann"), b.created("n-2", "ann", type_="mention"))
    post(svc, tenant_id, b.read("ann", ["n-1"]))
    report = outbox.apply_pending(svc, tenant_id)
    assert (report.rows, report.applied, report.duplicates) == (2, 2, 0)
    assert redis_counts(svc, tenant_id, "ann") == sql(svc, tenant_id, "ann")
    assert redis_counts(svc, tenant_id, "ann").unread == 1
    assert pending(svc) == 0
    assert outbox.apply_pending(svc, tenant_id).rows == 0


def test_cold_users_stay_cold_but_their_rows_are_applied(svc, tenant_id):
    post(svc, tenant_id, b.created("n-1", "bob"))
    assert outbox.apply_pending(svc, tenant_id).applied == 1
    assert redis_counts(svc, tenant_id, "bob") is None
    assert pending(svc) == 0


def test_a_crash_between_apply_and_mark_does_not_double_count(svc, tenant_id):
    # Given rows applied to Redis by a job that died before marking them in SQL
    warm(svc, tenant_id, "ann")
    post(svc, tenant_id, b.created("n-1", "ann"), b.created("n-2", "bob"))
    with svc.db.snapshot() as session:
        rows = session.execute(select(OutboxRow.id, OutboxRow.payload)).all()
    svc.counters.apply(tenant_id, [outbox_delta(r.id, r.payload) for r in rows], 1)
    # When the sweep's job applies them again
    report = outbox.apply_pending(svc, tenant_id)
    # Then they are marked, and counted once
    assert (report.rows, report.applied, report.duplicates) == (2, 0, 2)
    assert pending(svc) == 0
    assert redis_counts(svc, tenant_id, "ann").total == 1


def test_only_the_given_ids_are_applied(svc, tenant_id):
    first = post(svc, tenant_id, b.created("n-1", "ann")).high_water
    post(svc, tenant_id, b.created("n-2", "ann"))
    report = outbox.apply_pending(svc, tenant_id, ids=[first, first])
    assert report.rows == 1 and pending(svc) == 1
    assert outbox.apply_pending(svc, tenant_id, ids=[first]).rows == 0


def test_limit_bounds_the_rows_taken_and_batches_follow_the_batch_size(make_app, tenant_id):
    svc = make_app(APPLY_BATCH_SIZE=2).extensions["tally"]
    for i in range(5):
        post(svc, tenant_id, b.created(f"n-{i}", f"user-{i}"))
    limited = outbox.apply_pending(svc, tenant_id, limit=3)
    assert (limited.rows, limited.batches) == (3, 2)
    rest = outbox.apply_pending(svc, tenant_id)
    assert (rest.rows, rest.batches) == (2, 1)


def test_rows_of_another_tenant_are_left_alone(svc, tenant_id):
    post(svc, tenant_id, b.created("n-1", "ann"))
    ingest(svc.db, "0b5e2f4c-1111-4d2d-8e3f-4a5b6c7d8e9f", b.loaded(b.created("n-1")), 1)
    assert outbox.apply_pending(svc, tenant_id).rows == 1
    assert pending(svc) == 1


def test_a_rebuild_in_progress_makes_the_apply_wait_then_give_up(svc, tenant_id):
    warm(svc, tenant_id, "ann")
    post(svc, tenant_id, b.created("n-1", "ann"))
    token = svc.counters.begin_rebuild(tenant_id, keys.notification_group("ann"))
    with pytest.raises(RebuildBusy):
        outbox.apply_pending(svc, tenant_id)
    assert pending(svc) == 1
    svc.counters.abort_rebuild(tenant_id, keys.notification_group("ann"), token)
    assert outbox.apply_pending(svc, tenant_id).applied == 1
    assert redis_counts(svc, tenant_id, "ann").total == 1


def test_redis_down_leaves_rows_pending(make_app, tenant_id):
    svc = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0").extensions["tally"]
    post(svc, tenant_id, b.created("n-1", "ann"))
    with pytest.raises(StoreUnavailable):
        outbox.apply_pending(svc, tenant_id)
    assert pending(svc) == 1


def test_a_stream_listener_hears_about_the_change(svc, tenant_id):
    listener = svc.counters.client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(keys.stream_channel(tenant_id, "ann"))
    listener.get_message(timeout=1)  # the subscribe confirmation
    post(svc, tenant_id, b.created("n-1", "ann"))
    outbox.apply_pending(svc, tenant_id)
    message = listener.get_message(timeout=5)
    listener.close()
    assert message is not None and message["data"] == "changed"


def test_pending_tenants_honour_the_grace_period(svc, tenant_id):
    post(svc, tenant_id, b.created("n-1"), now=1_000)
    assert outbox.pending_tenants(svc.db, 999) == []
    assert outbox.pending_tenants(svc.db, 1_000) == [tenant_id]
    outbox.apply_pending(svc, tenant_id)
    assert outbox.pending_tenants(svc.db, 10_000) == []


def test_backlog_counts_pending_rows_and_the_oldest_age(svc, tenant_id):
    assert outbox.backlog(svc.db, 5_000) == (0, 0)
    post(svc, tenant_id, b.created("n-1", "ann"), now=1_000)
    post(svc, tenant_id, b.created("n-2", "bob"), now=3_000)
    assert outbox.backlog(svc.db, 5_000) == (2, 4_000)


def test_prune_drops_dedupe_entries_then_old_applied_rows(svc, tenant_id):
    # Given one row applied long ago, one applied just now, and one pending
    retention_ms = svc.config.OUTBOX_RETENTION_SECONDS * 1000
    old = post(svc, tenant_id, b.created("n-1", "ann")).high_water
    recent = post(svc, tenant_id, b.created("n-2", "ann")).high_water
    outbox.apply_pending(svc, tenant_id)
    kept = post(svc, tenant_id, b.created("n-3", "ann")).high_water
    now = epoch_ms(svc.clock())
    with svc.db.write() as session:
        session.execute(OutboxRow.__table__.update().where(OutboxRow.id == old)
                        .values(applied_at=now - retention_ms - 1))
    # When pruning
    assert outbox.prune(svc, now) == 1
    # Then only the old row and its dedupe entry are gone
    with svc.db.snapshot() as session:
        left = sorted(session.scalars(select(OutboxRow.id)))
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 2
    assert left == [recent, kept]
    applied = svc.counters.client.zrange(keys.applied_key(tenant_id), 0, -1)
    assert applied == [str(recent)]
    assert outbox.prune(svc, now) == 0


def test_pruning_every_row_keeps_the_newest_so_no_id_is_handed_out_twice(svc, tenant_id):
    # Given every row applied longer ago than the retention
    post(svc, tenant_id, b.created("n-1", "ann"))
    last = post(svc, tenant_id, b.created("n-2", "ann")).high_water
    outbox.apply_pending(svc, tenant_id)
    later = epoch_ms(svc.clock()) + (svc.config.OUTBOX_RETENTION_SECONDS + 1) * 1000
    # When pruning, all but the newest row go
    assert outbox.prune(svc, later) == 1
    # Then the next row is numbered after every row ever written (SQLite takes max(id) + 1)
    assert post(svc, tenant_id, b.created("n-3", "ann")).high_water > last
