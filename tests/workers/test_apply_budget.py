"""Apply jobs stay short: past their time budget they hand the rest to a continuation job, and
jobs enqueued behind one that applied everything return at once."""
from __future__ import annotations

from rq import Queue, SimpleWorker
from rq.registry import FinishedJobRegistry

from tally import jobs as names
from tally.core.clock import epoch_ms
from tally.services import notifications
from tally.services import outbox
from tally.services.ingest import ingest
from tests.support import events as b


def drain(app, queue_redis):
    queue = Queue(names.APPLY_QUEUE, connection=queue_redis)
    with app.app_context():
        SimpleWorker([queue], connection=queue_redis).work(burst=True)
    return FinishedJobRegistry(queue=queue).get_job_ids()


def post(svc, tenant, *raw):
    return ingest(svc.db, tenant, b.loaded(*raw), epoch_ms(svc.clock()))


def test_a_job_past_its_budget_leaves_the_rest_to_its_continuation(
        make_app, queue_redis, tenant_id, monkeypatch):
    # Given three outbox rows, one batch each, and a budget spent after the first batch
    app = make_app(APPLY_BATCH_SIZE=1)
    svc = app.extensions["tally"]
    assert notifications.rebuild_user(svc, tenant_id, "ann")
    high = [post(svc, tenant_id, b.created(f"n-{i}", "ann")).high_water for i in range(3)][-1]
    monkeypatch.setattr(names, "APPLY_BUDGET_SECONDS", 0)
    # When one apply job is enqueued and the queue is worked off
    names.enqueue_apply(queue_redis, tenant_id, high)
    finished = drain(app, queue_redis)
    # Then two continuations took a batch each, and every row counts once
    assert len(finished) == 3
    assert outbox.backlog(svc.db)[0] == 0
    assert svc.counters.read_notifications(tenant_id, "ann").unread == 3


def test_jobs_behind_one_that_applied_everything_find_nothing_left(app, queue_redis, tenant_id):
    svc = app.extensions["tally"]
    assert notifications.rebuild_user(svc, tenant_id, "ann")
    for i in range(3):
        names.enqueue_apply(queue_redis, tenant_id,
                            post(svc, tenant_id, b.created(f"n-{i}", "ann")).high_water)
    finished = drain(app, queue_redis)
    results = [Queue(names.APPLY_QUEUE, connection=queue_redis).fetch_job(job_id).return_value()
               for job_id in finished]
    assert sorted(result["rows"] for result in results) == [0, 0, 3]
    assert svc.counters.read_notifications(tenant_id, "ann").unread == 3
