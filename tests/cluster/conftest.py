"""The suite's Redis Cluster: three masters from redis-server on loopback ports, one per run.

Tests under tests/cluster get an app whose counter store is that cluster (TALLY_REDIS_CLUSTER)
and whose RQ queue is the standalone test redis-server, as in production. They run on SQLite only:
the cluster changes nothing SQL does, and PostgreSQL is covered by the rest of the suite.
"""
from __future__ import annotations

import shutil

import pytest

from tests.support.redis_cluster import RedisClusterProcesses
from tests.support.counter_store import CounterStore


@pytest.fixture(scope="session")
def redis_cluster():
    cluster = RedisClusterProcesses(masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def counter_store(redis_cluster, redis_url) -> CounterStore:
    """The cluster, emptied (every master), with the standalone test server for RQ."""
    store = CounterStore(url=redis_cluster.url, queue_url=redis_url, cluster=True)
    store.flush()
    return store


@pytest.fixture
def db_url(request, tmp_path, sqlite_template) -> str:
    """SQLite only (see the module docstring)."""
    assert getattr(request, "param", "sqlite") == "sqlite", "cluster tests run on SQLite only"
    path = tmp_path / "tally.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def make_app(make_app, counter_store):
    """Apps of the suite's conftest, on the cluster."""

    def build(**overrides):
        return make_app(**{**counter_store.settings, **overrides})

    return build
