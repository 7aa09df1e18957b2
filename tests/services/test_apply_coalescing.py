"""POST /events enqueues an apply job only when none is waiting to start; no commit is missed."""
from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker

from tally import jobs as names
from tally.services import notifications
from tally.services import outbox
from tests.support import events as b

SERVICE = ("ticket_service",)


@pytest.fixture
def svc(app):
    return app.extensions["tally"]


@pytest.fixture
def send(client, headers):
    def post(*raw):
        response = client.post(b.EVENTS, json={"events": list(raw)},
                               headers=headers(roles=SERVICE))
        assert response.status_code == 202
        return response

    return post


def queued(svc) -> list:
    return Queue(names.APPLY_QUEUE, connection=svc.queue_redis).jobs


def test_posts_while_a_job_waits_to_start_enqueue_no_other(svc, send, tenant_id):
    send(b.created("n-1", "ann"))
    send(b.created("n-2", "bob"))
    send(b.created("n-3", "ann"))
    assert outbox.backlog(svc.db)[0] == 3
    [job] = queued(svc)
    assert job.args[0] == tenant_id


def test_the_waiting_job_applies_the_rows_of_every_post_it_stood_for(app, svc, send, tenant_id):
    # Given warm counters, and three POSTs served by one queued job
    assert notifications.rebuild_user(svc, tenant_id, "ann")
    for n in range(3):
        send(b.created(f"n-{n}", "ann"))
    assert len(queued(svc)) == 1
    # When the worker runs it
    with app.app_context():
        SimpleWorker([Queue(names.APPLY_QUEUE, connection=svc.queue_redis)],
                     connection=svc.queue_redis).work(burst=True)
    # Then every row is applied and the count is exact
    assert outbox.backlog(svc.db)[0] == 0
    assert svc.counters.read_notifications(tenant_id, "ann").total == 3


def test_once_a_job_has_started_the_next_post_enqueues_a_new_one(svc, send, tenant_id):
    send(b.created("n-1", "ann"))
    outbox.apply_pending(svc, tenant_id)  # what the queued job does first: clear the key, read
    send(b.created("n-2", "ann"))
    jobs = queued(svc)
    assert len(jobs) == 2
    assert jobs[-1].args == (tenant_id, outbox.high_water(svc.db, tenant_id))


def test_a_lost_key_only_costs_a_job_more(svc, send, tenant_id):
    # The key expires (APPLY_QUEUED_SECONDS) while its job still waits: the next POST enqueues
    send(b.created("n-1", "ann"))
    svc.queue_redis.delete(outbox.apply_queued_key(tenant_id))
    send(b.created("n-2", "ann"))
    assert len(queued(svc)) == 2
    ttl = svc.queue_redis.ttl(outbox.apply_queued_key(tenant_id))
    assert 0 < ttl <= outbox.APPLY_QUEUED_SECONDS
