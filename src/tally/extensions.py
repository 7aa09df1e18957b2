"""The app's connections and caches, built in init_app and reached through services()."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, current_app

from tally.core.cache import Cache, same, same_each, until, until_both
from tally.core.clock import Clock, utc_now
from tally.services.catalog import FilterCatalog, catalog_ttl
from tally.stores.sql.db import Database
from tally.stores.redis.counters import RedisCounters
from tally.stores.redis.cells import TicketCounters

EXTENSION = "tally"


def counter_client(url: str, cluster: bool) -> Any:
    """The counter store's client: strings in and out; a RedisCluster when configured.

    The cluster client connects on first use (as redis.Redis does), so the app starts and answers
    from SQL while the cluster is down; it follows MOVED/ASK and re-reads the slot map on errors.
    """
    options = dict(decode_responses=True, socket_timeout=5, socket_connect_timeout=2,
                   health_check_interval=30)
    if cluster:
        from tally.stores.redis.cluster import LazyCluster

        return LazyCluster(url, **options)
    return redis.Redis.from_url(url, retry_on_timeout=True, **options)


def queue_client(url: str) -> redis.Redis:
    """RQ's connection: raw bytes, standalone."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


@dataclass(frozen=True)
class Caches:
    """The app's caches of derived work (tally.core.cache), each bounded and each entry judged
    by its rule; docs/decisions.md lists them. Values are shared between requests and threads:
    callers never modify them."""

    tokens: Cache  # sha256(realm, token) -> VerifiedToken, until the token's exp (wall clock)
    passed: Cache  # raw (x-tenantid, realmname, Authorization) -> Principal, until both the
    #                tenant lookup (monotonic) and the token (wall clock) expire
    tenants: Cache  # tenant id -> its realm, until looked up again (monotonic)
    filters: Cache  # tenant id -> its parsed filters, until the catalog TTL runs out (monotonic)
    resolved: Cache  # (tenant, user, ids) -> resolved filters, while that copy is the tenant's
    plans: Cache  # request shape -> CompiledCount, while its definitions are the catalog's
    specs: Cache  # MP id (a digest of its spec) -> Materialized: pure
    badge_queries: Cache  # raw query string -> loaded args: pure
    count_queries: Cache  # raw query string -> loaded args: pure
    count_bodies: Cache  # (mimetype, raw body) -> loaded args: pure


def build_caches(sizes: dict[str, int]) -> Caches:
    """Every cache of an app, sized by `sizes` (settings CACHE_SIZES, by name) or its default."""

    def size(name: str, default: int) -> int:
        return sizes.get(name, default)

    return Caches(
        tokens=Cache("tokens", size("tokens", 10_000), until),
        # a token may be 32 KiB (tally.auth.tokens.MAX_TOKEN_BYTES): the headers' bytes bound it
        passed=Cache("passed", size("passed", 10_000), until_both, max_weight=64 * 1024 * 1024),
        tenants=Cache("tenants", size("tenants", 10_000), until),
        filters=Cache("filters", size("filters", 1024), until),
        resolved=Cache("resolved", size("resolved", 16_384), same),
        plans=Cache("plans", size("plans", 2048), same_each),
        specs=Cache("specs", size("specs", 65_536)),
        badge_queries=Cache("badge_queries", size("badge_queries", 1024)),
        count_queries=Cache("count_queries", size("count_queries", 1024)),
        count_bodies=Cache("count_bodies", size("count_bodies", 1024)),
    )


@dataclass
class Services:
    config: Any
    db: Database
    counters: RedisCounters
    ticket_counters: TicketCounters
    queue_redis: redis.Redis
    realms: Any
    filter_catalog: FilterCatalog
    caches: Caches
    clock: Clock = utc_now


def init_app(app: Flask, config: Any, realms: Any) -> Services:
    """Build the connections and caches once per app; nothing connects until first used."""
    caches = build_caches(config.CACHE_SIZES)
    counters = RedisCounters(counter_client(config.REDIS_URL, config.REDIS_CLUSTER))
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
