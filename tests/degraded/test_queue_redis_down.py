"""The queue Redis down: ingestion still accepts into SQL and the outbox; when a queue Redis is
back, the sweep re-enqueues every lagging tenant and the worker applies all of it, once."""
from __future__ import annotations

import pytest
import redis
from rq import Queue

from tally import jobs
from tally.services import outbox
from tally.dev.launcher import RedisProcess, free_port
from tests.support import degraded as h
from tally.workers import jobs as entry_points

pytestmark = pytest.mark.slow


@pytest.fixture
def queue_port():
    """A port nothing listens on yet; a queue redis-server started on it is stopped after."""
    port = free_port()
    servers: list[RedisProcess] = []
    yield port, servers
    for server in servers:
        server.stop()


def test_ingestion_accepts_while_down_and_the_sweep_catches_up(
        make_app, queue_port, headers, tenant_id, caplog, tmp_path):
    port, servers = queue_port
    app = make_app(QUEUE_URL=f"redis://127.0.0.1:{port}/0")
    svc, client = app.extensions["tally"], app.test_client()
    tokens = {"ann": headers("ann"), "admin": headers("boss", h.ADMIN)}
    service = headers(roles=h.SERVICE)
    h.assert_answers(client, tokens, h.EMPTY, "recomputed")  # warm: deltas will be owed to it

    for batch in (h.first_events(), h.second_events()):
        response = client.post(h.EVENTS, json={"events": batch}, headers=service)
        assert response.status_code == 202
        assert response.get_json()["data"]["duplicates"] == 0
    assert caplog.text.count("the outbox sweep will catch up") == 2
    pending, _age = outbox.backlog(svc.db)
    assert pending > 0
    h.assert_answers(client, tokens, h.EMPTY, "cache")  # nothing applied yet: no queue

    workdir = tmp_path / "queue-redis"
    workdir.mkdir()
    servers.append(RedisProcess(port=port, workdir=str(workdir)).start())
    with app.app_context():
        swept = entry_points.sweep()
    assert swept["enqueued"] == [tenant_id]
    connection = redis.Redis.from_url(servers[0].url)
    assert Queue(jobs.APPLY_QUEUE, connection=connection).count == 1
    connection.close()
    assert h.drain(app, servers[0].url)
    h.assert_answers(client, tokens, h.AFTER_SECOND, "cache")
    h.assert_no_drift(svc, tenant_id)
