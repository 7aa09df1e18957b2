"""The counter Redis down: counts answer from SQL (`sql`), ingestion still accepts, and when the
counter Redis returns (with its old counters, or empty) the counters converge on SQL."""
from __future__ import annotations

from unittest.mock import ANY

import pytest
import redis

from tally.services import outbox
from tally.dev.launcher import RedisProcess
from tests.support import degraded as h

pytestmark = pytest.mark.slow

# After the second history, ann also marks n-4 (comment, high) read during the outage.
AFTER_READ = {"ann": (5, 2, h.AFTER_SECOND["ann"][2] | {"comment": 1},
                      h.AFTER_SECOND["ann"][3] | {"high": 1}),
              "tickets": h.AFTER_SECOND["tickets"]}


@pytest.fixture
def counter_redis(tmp_path):
    workdir = tmp_path / "counter-redis"
    workdir.mkdir()
    server = RedisProcess(workdir=str(workdir)).start()
    yield server
    server.stop()


@pytest.fixture
def world(make_app, counter_redis, redis_url, headers, tenant_id):
    """An app whose counter Redis is `counter_redis` (queue: the suite's), warm after the first
    history was ingested and applied by a worker."""
    app = make_app(REDIS_URL=counter_redis.url, QUEUE_URL=redis_url)
    client = app.test_client()
    tokens = {"ann": headers("ann"), "admin": headers("boss", h.ADMIN),
              "service": headers(roles=h.SERVICE)}
    h.assert_answers(client, tokens, h.EMPTY, "recomputed")  # installs the (zero) counters
    assert client.post(h.EVENTS, json={"events": h.first_events()},
                       headers=tokens["service"]).status_code == 202
    assert h.drain(app, redis_url)
    h.assert_answers(client, tokens, h.AFTER_FIRST, "cache")
    return app, client, tokens


def _outage(app, client, tokens, counter_redis) -> None:
    """While the counter Redis is down: SQL answers, ingestion and mark-read still work."""
    counter_redis.kill()
    h.assert_answers(client, tokens, h.AFTER_FIRST, "sql")
    accepted = client.post(h.EVENTS, json={"events": h.second_events()},
                           headers=tokens["service"])
    assert accepted.status_code == 202
    assert accepted.get_json()["data"] == {"accepted": 7, "duplicates": 0, "watermark": ANY}
    marked = client.post(h.READ, json={"ids": ["n-4"]}, headers=tokens["ann"])
    assert marked.status_code == 200 and marked.headers["X-Count-Source"] == "sql"
    assert marked.get_json()["data"]["unread"] == 2  # read-your-writes, from SQL
    h.assert_answers(client, tokens, AFTER_READ, "sql")
    assert outbox.backlog(app.extensions["tally"].db)[0] > 0  # owed, durable in SQL


def test_back_with_its_old_counters_the_queued_jobs_bring_them_level(
        world, counter_redis, redis_url, tenant_id):
    app, client, tokens = world
    saver = redis.Redis.from_url(counter_redis.url)
    saver.save()  # the restarted server loads this: it comes back warm and behind
    saver.close()
    _outage(app, client, tokens, counter_redis)

    counter_redis.start()
    assert app.extensions["tally"].counters.read_notifications(tenant_id, "ann") is not None
    assert h.drain(app, redis_url)  # the apply jobs queued during the outage
    h.assert_answers(client, tokens, AFTER_READ, "cache")
    h.assert_no_drift(app.extensions["tally"], tenant_id)


def test_back_empty_cold_reads_rebuild_and_the_late_jobs_count_nothing_twice(
        world, counter_redis, redis_url, tenant_id):
    app, client, tokens = world
    _outage(app, client, tokens, counter_redis)

    counter_redis.start()  # nothing saved: every counter is cold, the outbox still owes deltas
    h.assert_answers(client, tokens, AFTER_READ, "recomputed")
    assert h.drain(app, redis_url)
    h.assert_answers(client, tokens, AFTER_READ, "cache")
    h.assert_no_drift(app.extensions["tally"], tenant_id)
