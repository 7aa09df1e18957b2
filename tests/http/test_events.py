"""POST /events over HTTP: 202 after the commit, service role only, errors in the envelope."""
from __future__ import annotations

from unittest.mock import ANY

import redis
from rq import Queue

from tally.services import outbox
from tally.jobs import APPLY_QUEUE, apply_job_id
from tally.dev.launcher import free_port
from tests.support import events as b

SERVICE = ("ticket_service",)


def test_accepted_events_are_durable_and_an_apply_job_is_queued(
        app, client, headers, tenant_id, redis_url):
    batch = {"events": [b.created("n-1"), b.created("n-2")]}
    response = client.post(b.EVENTS, json=batch, headers=headers(roles=SERVICE))
    assert response.status_code == 202
    body = response.get_json()
    assert body["success"] is True and body["timestamp"].endswith("Z")
    assert body["data"] == {"accepted": 2, "duplicates": 0, "watermark": ANY}
    assert response.headers["X-Count-Watermark"] == body["data"]["watermark"]
    svc = app.extensions["tally"]
    assert outbox.backlog(svc.db)[0] == 1
    queue = Queue(APPLY_QUEUE, connection=redis.Redis.from_url(redis_url))
    high_water = outbox.high_water(svc.db, tenant_id)
    assert queue.job_ids == [apply_job_id(tenant_id, high_water)]
    [job] = queue.jobs
    assert job.args == (tenant_id, high_water)
    assert job.retries_left == 5 and job.timeout == svc.config.JOB_TIMEOUT


def test_redelivery_answers_202_with_duplicates_and_queues_nothing_new(
        client, headers, redis_url):
    batch = {"events": [b.created("n-1")]}
    client.post(b.EVENTS, json=batch, headers=headers(roles=SERVICE))
    again = client.post(b.EVENTS, json=batch, headers=headers(roles=SERVICE))
    assert again.status_code == 202
    assert again.get_json()["data"] == {"accepted": 0, "duplicates": 1, "watermark": ANY}
    assert Queue(APPLY_QUEUE, connection=redis.Redis.from_url(redis_url)).count == 1


def test_other_roles_are_forbidden(client, headers):
    response = client.post(b.EVENTS, json={"events": [b.created("n-1")]},
                           headers=headers(roles=("ticket_admin",)))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "FORBIDDEN"


def test_an_invalid_event_is_a_400_naming_index_and_field(app, client, headers):
    batch = {"events": [b.created("n-1"), b.created("n-2", priority="urgent")]}
    response = client.post(b.EVENTS, json=batch, headers=headers(roles=SERVICE))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == ["events[1].data.priority"]
    assert outbox.backlog(app.extensions["tally"].db)[0] == 0


def test_a_queue_outage_still_accepts_the_events(make_app, headers, caplog):
    app = make_app(QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = app.test_client().post(b.EVENTS, json={"events": [b.created("n-1")]},
                                      headers=headers(roles=SERVICE))
    assert response.status_code == 202
    assert outbox.backlog(app.extensions["tally"].db)[0] == 1
    assert "the outbox sweep will catch up" in caplog.text
