"""The app's connections and caches, built in init_app and reached through services()."""
from __future__ import annotations

from typing import Any

import redis
from flask import Flask, current_app

from tally.services.catalog import FilterCatalog, catalog_ttl
from tally.services.container import RealmDirectory, Services, build_caches
from tally.settings import Base
from tally.stores.redis.cells import TicketCounters
from tally.stores.redis.cluster import LazyCluster
from tally.stores.redis.counters import RedisCounters
from tally.stores.redis.packing import HiredisPacker
from tally.stores.sql.db import Database

EXTENSION = "tally"


def counter_client(url: str, cluster: bool) -> Any:
    """The counter store's client: strings in and out; a RedisCluster when configured.

    The cluster client connects on first use (as redis.Redis does), so the app starts and answers
    from SQL while the cluster is down; it follows MOVED/ASK and re-reads the slot map on errors.
    Commands are packed by hiredis directly (stores/redis/packing.py).
    """
    options = dict(decode_responses=True, socket_timeout=5, socket_connect_timeout=2,
                   health_check_interval=30, command_packer=HiredisPacker())
    if cluster:
        return LazyCluster(url, **options)
    return redis.Redis.from_url(url, retry_on_timeout=True, **options)


def queue_client(url: str) -> redis.Redis:
    """RQ's connection: raw bytes, standalone."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def init_app(app: Flask, config: Base, realms: RealmDirectory) -> Services:
    """Build the connections and caches once per app; nothing connects until first used."""
    caches = build_caches(config.CACHE_SIZES)
    counters = RedisCounters(counter_client(config.REDIS_URL, config.REDIS_CLUSTER),
                             cell_keys=caches.cell_keys)
    services = Services(
        config=config,
        db=Database(config.DATABASE_URL, config.DB_POOL_SIZE, config.DB_MAX_OVERFLOW),
        counters=counters,
        ticket_counters=TicketCounters(counters, caches.specs),
        queue_redis=queue_client(config.queue_url),
        realms=realms,
        filter_catalog=FilterCatalog(caches.filters, caches.resolved,
                                     ttl=catalog_ttl(config.POLL_INTERVAL)),
        caches=caches,
    )
    app.extensions[EXTENSION] = services
    return services


def services() -> Services:
    return current_app.extensions[EXTENSION]
