"""What every use case is given: one app's configuration, connections and app-scoped state
(built once per app by tally.extensions.init_app)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis

from tally.core.cache import Cache, same, same_each, until, until_both
from tally.core.clock import Clock, utc_now
from tally.services.catalog import FilterCatalog
from tally.settings import Base
from tally.stores.redis.cells import TicketCounters
from tally.stores.redis.counters import RedisCounters
from tally.stores.sql.db import Database


class RealmDirectory(Protocol):
    """The realms whose tokens are accepted, by name (tally.auth.realms.Realms)."""

    def get(self, name: str) -> object | None: ...


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
    rendered: Cache  # (view, badge counts) -> the count's `data` JSON and its ETag: pure
    cell_keys: Cache  # (tenant, MP, bucket, timed) -> a ticket cell's Redis keys: pure


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
        # every open tab of a user polls the same counts, which change far less often
        rendered=Cache("rendered", size("rendered", 4096)),
        # the worker's apply names these for every touched cell of every event
        cell_keys=Cache("cell_keys", size("cell_keys", 65_536)),
    )


@dataclass
class Services:
    config: Base
    db: Database
    counters: RedisCounters
    ticket_counters: TicketCounters
    queue_redis: redis.Redis
    realms: RealmDirectory
    filter_catalog: FilterCatalog
    caches: Caches
    clock: Clock = utc_now
