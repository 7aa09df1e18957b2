"""Which counter Redis a test runs against: a standalone redis-server, or a Redis Cluster.

Tests that start the app and real processes take it from the `counter_store` fixture
(tests/conftest.py: the standalone server; tests/cluster/conftest.py: a three-master cluster), so
the same test runs on both. RQ always gets a standalone Redis (`queue_url`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from tests.support import processes as procs


@dataclass(frozen=True)
class CounterStore:
    url: str  # the counter store (a cluster's seed node)
    queue_url: str  # the standalone Redis RQ uses
    cluster: bool = False

    @property
    def settings(self) -> dict[str, Any]:
        """create_app overrides that point the app at this counter store."""
        return {"REDIS_URL": self.url, "REDIS_CLUSTER": self.cluster, "QUEUE_URL": self.queue_url}

    def process_env(self, db_url: str, realms_file: str) -> dict[str, str]:
        """The environment of a worker or web process using this counter store."""
        env = procs.process_env(db_url, self.url, realms_file)
        env.update(TALLY_REDIS_CLUSTER=str(self.cluster).lower(), TALLY_QUEUE_URL=self.queue_url)
        return env

    def client(self) -> Any:
        """A client of the counter store (strings in and out); close it after use."""
        if self.cluster:
            return redis.RedisCluster.from_url(self.url, decode_responses=True)
        return redis.Redis.from_url(self.url, decode_responses=True)

    def keys(self, pattern: str) -> list[str]:
        """KEYS on the counter store: on a cluster, on every master."""
        client = self.client()
        try:
            if self.cluster:
                return client.keys(pattern, target_nodes=redis.RedisCluster.PRIMARIES)
            return client.keys(pattern)
        finally:
            client.close()

    def flush(self) -> None:
        """FLUSHALL the counter store: on a cluster, every master (replicas follow)."""
        client = self.client()
        try:
            client.flushall()  # redis-py sends it to every primary of a cluster
        finally:
            client.close()
