"""The whole Redis Cluster down: tally starts anyway, counts answer from SQL, events are
accepted, and once the cluster is back the counters rebuild and the owed deltas apply once."""
from __future__ import annotations

import pytest

from tally.services import outbox
from tests.support.redis_cluster import RedisClusterProcesses
from tests.support import degraded as h
from tests.support.counter_store import CounterStore

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def cluster():
    own = RedisClusterProcesses(masters=3).start()
    yield own
    own.stop()


@pytest.fixture
def counter_store(cluster, redis_url) -> CounterStore:
    return CounterStore(url=cluster.url, queue_url=redis_url, cluster=True)


def test_an_app_started_while_the_cluster_is_down_serves_from_sql_then_from_redis(
        make_app, cluster, headers, tenant_id, redis_url):
    # Given every master down before the app is even built
    for node in cluster.masters:
        node.stop()
    app = make_app()
    client = app.test_client()
    tokens = {"ann": headers("ann"), "admin": headers("boss", h.ADMIN),
              "service": headers(roles=h.SERVICE)}
    # Then it is not ready, yet it answers from SQL and accepts events
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["redis"] == "unavailable"
    assert client.post(h.EVENTS, json={"events": h.first_events()},
                       headers=tokens["service"]).status_code == 202
    h.assert_answers(client, tokens, h.AFTER_FIRST, "sql")
    assert outbox.backlog(app.extensions["tally"].db)[0] > 0

    # When the masters come back (empty: no persistence) and the queued jobs run
    for node in cluster.masters:
        node.start()
    cluster.wait_ready()
    assert client.get("/readyz").status_code == 200
    h.assert_answers(client, tokens, h.AFTER_FIRST, "recomputed")
    assert h.drain(app, redis_url)
    # Then the counters are warm and equal SQL, every delta counted once
    h.assert_answers(client, tokens, h.AFTER_FIRST, "cache")
    h.assert_no_drift(app.extensions["tally"], tenant_id)
