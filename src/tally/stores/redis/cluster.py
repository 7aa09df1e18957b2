"""The counter store on Redis Cluster: a client that connects on first use, and tenant scans.

Every key of a tenant carries its hash tag (keys.py), so a tenant lives in one slot on one master:
scripts and multi-key reads stay in that slot, and a SCAN over a tenant asks only the master
that owns it (plus, while a reshard moves that slot, the master it moves to). Redirections
(MOVED, ASK, TRYAGAIN) and failovers are followed by redis-py's RedisCluster and its pipeline;
only redis-py's public API is used (RedisCluster, its pipeline, Script, the nodes it returns).
"""
from __future__ import annotations

import threading
from typing import Any, Iterator

import redis
from redis.commands.core import Script
from redis.exceptions import (AskError, MovedError, NoScriptError, RedisClusterException,
                              TryAgainError)

from tally.stores import keys

SCAN_COUNT = 500
# Replies of a command that did not run: send it again through a client that handles them. A
# cluster pipeline follows redirections itself but leaves a missing script (NOSCRIPT) to us.
NOT_RUN = (NoScriptError, MovedError, AskError, TryAgainError)


class LazyCluster:
    """A RedisCluster built on first use, so tally starts (and answers from SQL) while the
    cluster is unreachable; until it connects, every call fails with redis.ConnectionError."""

    def __init__(self, url: str, **options: Any):
        self._url, self._options = url, options
        self._client: redis.RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def cluster(self) -> redis.RedisCluster:
        """The connected RedisCluster (built now if this is the first use)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = redis.RedisCluster.from_url(self._url, **self._options)
                    except RedisClusterException as error:
                        raise redis.ConnectionError(f"Redis Cluster unreachable: {error}") from None
        return self._client

    def register_script(self, script: str) -> Script:
        # As bytes, the script is hashed here without an encoder (so without connecting); it is
        # loaded on first use.
        return Script(self, script.encode())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)


def _cluster(client: Any) -> redis.RedisCluster | None:
    if isinstance(client, LazyCluster):
        return client.cluster
    return client if isinstance(client, redis.RedisCluster) else None


def _migration_target(cluster: redis.RedisCluster, owner: Any, slot: int) -> Any:
    """The master `owner` is migrating `slot` to right now, or None."""
    nodes = cluster.execute_command("CLUSTER NODES", target_nodes=owner)
    me = next((n for n in nodes.values() if "myself" in n["flags"]), None)
    wanted = [m["node_id"] for m in (me or {}).get("migrations", ())
              if m["state"] == "migrating" and int(m["slot"]) == slot]
    for address, node in nodes.items():
        if wanted and node["node_id"] == wanted[0]:
            host, port = address.rsplit(":", 1)
            return cluster.get_node(host=host, port=int(port))
    return None


def scan_tenant(client: Any, tenant: str, pattern: str | None = None) -> Iterator[str]:
    """Every key of `tenant` matching `pattern` (one of the tenant's, keys.py; default: all).

    On a cluster only the master owning the tenant's slot is scanned, then the master a reshard
    is moving the slot to, if any: keys only move from the first to the second, so a key that
    exists through the whole scan is returned (perhaps twice, never not at all).
    """
    pattern = pattern or keys.tenant_pattern(tenant)
    if not pattern.startswith(keys.tenant_prefix(tenant)):
        raise ValueError(f"{pattern!r} is not a pattern of tenant {tenant}'s keys")
    cluster = _cluster(client)
    if cluster is None:
        yield from client.scan_iter(match=pattern, count=SCAN_COUNT)
        return
    cluster.exists(keys.applied_key(tenant))  # a MOVED here refreshes the client's slot map
    slot = cluster.keyslot(keys.tenant_prefix(tenant))
    owner = cluster.get_node_from_key(keys.tenant_prefix(tenant))
    target = _migration_target(cluster, owner, slot)
    for node in [owner] + ([target] if target is not None else []):
        yield from cluster.scan_iter(match=pattern, count=SCAN_COUNT, target_nodes=node)


def tenant_pipeline(client: Any, tenant: str) -> Any:
    """A non-transactional pipeline for commands on one tenant's keys, scripts included.

    On a cluster it is RedisCluster's pipeline: the tenant's keys share a slot, so its commands
    go to one master in one round trip, and it follows redirections and failovers itself. A
    reply in NOT_RUN (a script the master lacks) means that command did not run, and the
    caller sends it again on its own, through the client that loads scripts.
    """
    del tenant  # one slot whatever the tenant: the keys route the commands
    return client.pipeline(transaction=False)
