"""The counter store on Redis: atomic apply and install scripts, and one-round-trip reads."""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from functools import wraps
from importlib import resources
from typing import Any, Callable, Iterable, Sequence, TypeVar

import redis
from redis.exceptions import RedisClusterException

from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, NotificationCounts
from tally.errors import GuardChanged, RebuildBusy, StoreUnavailable
from tally.stores import keys
from tally.core.cells import OutboxDelta
from tally.stores.redis import encoder
from tally.stores.redis.cluster import NOT_RUN, scan_tenant, tenant_pipeline

log = logging.getLogger("tally.stores.redis")
T = TypeVar("T")

APPLY_OK, APPLY_BUSY, APPLY_GUARD = 0, 1, 2
INSTALL_OK, INSTALL_LOST = 0, 1


def _script(name: str) -> str:
    return (resources.files("tally.stores.redis") / "lua" / f"{name}.lua").read_text()


def wrap_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Turn any redis failure into StoreUnavailable, the one type the SQL fallback catches.

    RedisClusterException is not a RedisError: redis-py raises it when no cluster node answers.
    """

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.RedisError, RedisClusterException) as error:
            raise StoreUnavailable(f"counter store: {error.__class__.__name__}: {error}") from error

    return wrapper


@dataclass(frozen=True)
class Write:
    """One install.lua write: `name` is del, hset or zadd; `key` a full key from keys.py."""

    name: str
    key: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Install:
    """A group's counters from one SQL snapshot: what to write and which outbox ids it counted."""

    group: str
    writes: list[Write]
    snapshot_ids: list[int]


@dataclass(frozen=True)
class ApplyResult:
    applied: int
    duplicates: int


class RedisCounters:
    """Counters of every tenant in one Redis (or Redis Cluster) with decode_responses=True."""

    def __init__(self, client: "redis.Redis", lock_ttl_ms: int = 30_000,
                 cell_keys: encoder.CellKeys | None = None):
        self.client = client
        self.lock_ttl_ms = lock_ttl_ms
        self.cell_keys = cell_keys  # the app's cache of ticket cells' key names (None: none)
        self._apply = client.register_script(_script("apply"))
        self._install = client.register_script(_script("install"))
        self._watermark = client.register_script(_script("watermark"))

    @wrap_errors
    def ping(self) -> bool:
        return bool(self.client.ping())

    @wrap_errors
    def apply(self, tenant: str, deltas: Iterable[OutboxDelta], now_ms: int,
              guards: Sequence[tuple[str, str]] = ()) -> ApplyResult:
        """Apply outbox deltas once each, in one round trip of apply.lua calls (encoder.py).

        Each call is all or nothing. Raises RebuildBusy while a group a call touches is being
        rebuilt, and GuardChanged when a guard key (e.g. the filter registry version) no longer
        holds its value; that call wrote nothing, the others may have applied their events, which
        a retry then counts as duplicates.
        """
        calls = encoder.encode(tenant, deltas, guards, cell_keys=self.cell_keys)
        if len(calls) == 1:
            replies = [self._apply(keys=calls[0].keys, args=[now_ms, calls[0].body])]
        else:
            replies = self._apply_pipelined(tenant, calls, now_ms)
        applied = duplicates = 0
        for call, reply in zip(calls, replies):
            if reply[0] == APPLY_BUSY:
                raise RebuildBusy(f"rebuild in progress: {call.keys[reply[1] - 1]}")
            if reply[0] == APPLY_GUARD:
                raise GuardChanged(call.keys[reply[1] - 1])
            applied, duplicates = applied + int(reply[1]), duplicates + int(reply[2])
        return ApplyResult(applied=applied, duplicates=duplicates)

    def _apply_pipelined(self, tenant: str, calls: Sequence[encoder.ApplyCall],
                         now_ms: int) -> list[Any]:
        """Several apply calls in one round trip; a call a cluster did not run is sent again."""
        pipe = tenant_pipeline(self.client, tenant)
        for call in calls:
            self._apply(keys=call.keys, args=[now_ms, call.body], client=pipe)
        replies = []
        for call, reply in zip(calls, pipe.execute(raise_on_error=False)):
            if isinstance(reply, NOT_RUN):
                reply = self._apply(keys=call.keys, args=[now_ms, call.body])
            elif isinstance(reply, Exception):
                raise reply
            replies.append(reply)
        return replies

    @wrap_errors
    def begin_rebuild(self, tenant: str, group: str) -> str | None:
        """Set the group's rebuild marker; its token, or None if another rebuild holds it."""
        token = secrets.token_hex(8)
        ok = self.client.set(keys.group_lock_key(tenant, group), token, nx=True,
                             px=self.lock_ttl_ms)
        return token if ok else None

    @wrap_errors
    def abort_rebuild(self, tenant: str, group: str, token: str) -> None:
        lock = keys.group_lock_key(tenant, group)
        if self.client.get(lock) == token:
            self.client.delete(lock)

    def _install_call(self, tenant: str, token: str, plan: Install,
                      client: Any = None) -> Any:
        table = encoder.KeyTable(keys.group_lock_key(tenant, plan.group),
                                 keys.group_snapshot_key(tenant, plan.group),
                                 keys.applied_key(tenant))
        body = {"snap": [str(i) for i in plan.snapshot_ids],
                "writes": [[w.name, table(w.key), *w.args] for w in plan.writes]}
        return self._install(keys=table.keys, args=[token, json.dumps(body)], client=client)

    @wrap_errors
    def install(self, tenant: str, token: str, plan: Install) -> bool:
        """Write a rebuilt group and clear its marker; False if the marker was lost meanwhile."""
        return int(self._install_call(tenant, token, plan)) == INSTALL_OK

    @wrap_errors
    def install_many(self, tenant: str, token: str, plans: Sequence[Install]) -> list[bool]:
        """Install several groups in one round trip (each install atomic on its own).

        An install whose reply says it did not run (on a cluster: redirected by a reshard) is
        sent again on its own, through the client that follows redirections.
        """
        if not plans:
            return []
        pipe = tenant_pipeline(self.client, tenant)
        for plan in plans:
            self._install_call(tenant, token, plan, client=pipe)
        installed = []
        for plan, reply in zip(plans, pipe.execute(raise_on_error=False)):
            if isinstance(reply, NOT_RUN):
                reply = self._install_call(tenant, token, plan)
            elif isinstance(reply, Exception):
                raise reply
            installed.append(int(reply) == INSTALL_OK)
        return installed

    @wrap_errors
    def applied_among(self, tenant: str, outbox_ids: Sequence[int]) -> set[int]:
        """Which of these outbox ids the counters have already applied (deduped if seen again)."""
        if not outbox_ids:
            return set()
        scores = self.client.zmscore(keys.applied_key(tenant), [str(i) for i in outbox_ids])
        return {i for i, score in zip(outbox_ids, scores) if score is not None}

    @wrap_errors
    def read_badge(self, tenant: str, user: str) -> tuple[int, NotificationCounts | None]:
        """The tenant's applied watermark and the user's counts (None when cold) in one round
        trip: the watermark is read first, so it claims no more than the counts read after it
        reflect (both keys share the tenant's slot; a cluster pipeline follows redirections)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.watermark_key(tenant))
        pipe.hgetall(keys.notification_counts_key(tenant, user))
        watermark, raw = pipe.execute()
        return int(watermark or 0), (notification_counts_from_hash(raw) if raw else None)

    def read_notifications(self, tenant: str, user: str) -> NotificationCounts | None:
        """The user's counts; None when cold (read_badge without the watermark)."""
        return self.read_badge(tenant, user)[1]

    @wrap_errors
    def applied_watermark(self, tenant: str) -> int:
        """The tenant's applied watermark (0 when none is stored: nothing is claimed)."""
        return int(self.client.get(keys.watermark_key(tenant)) or 0)

    @wrap_errors
    def advance_watermark(self, tenant: str, watermark: int) -> int:
        """Raise the applied watermark to `watermark` (never lower it) and publish a rise on the
        tenant's watermark channel; returns the value now stored."""
        return int(self._watermark(keys=[keys.watermark_key(tenant)],
                                   args=[watermark, keys.watermark_channel(tenant)]))

    @wrap_errors
    def delete_tenant_keys(self, tenant: str, match: str | None = None) -> int:
        """Delete a tenant's keys (all, or those matching a suffix pattern); returns how many."""
        pattern = keys.tenant_prefix(tenant) + (match or "*")
        removed = 0
        batch: list[str] = []
        for key in scan_tenant(self.client, tenant, pattern):
            batch.append(key)
            if len(batch) >= 500:
                removed += self.client.delete(*batch)
                batch = []
        if batch:
            removed += self.client.delete(*batch)
        return removed

    @wrap_errors
    def delete_keys(self, *names: str) -> int:
        return int(self.client.delete(*names)) if names else 0

    @wrap_errors
    def forget_applied(self, tenant: str, outbox_ids: list[int]) -> None:
        """Drop dedupe entries of outbox rows that are about to be pruned from SQL."""
        if outbox_ids:
            self.client.zrem(keys.applied_key(tenant), *[str(i) for i in outbox_ids])

    @wrap_errors
    def publish(self, channel: str, message: str) -> None:
        self.client.publish(channel, message)

    @wrap_errors
    def publish_many(self, tenant: str, channels: Sequence[str], message: str) -> None:
        """PUBLISH `message` on several of a tenant's channels in one round trip."""
        if channels:
            pipe = tenant_pipeline(self.client, tenant)
            for channel in channels:
                pipe.publish(channel, message)
            pipe.execute()


NOTIFICATION_FIELDS = ("total", "unread", "lu")


def notification_counts_from_hash(raw: dict[str, str]) -> NotificationCounts:
    last = int(raw.get("lu", "0"))
    return NotificationCounts(
        total=int(raw.get("total", 0)),
        unread=int(raw.get("unread", 0)),
        by_type={t: int(raw.get(f"t:{t}", 0)) for t in NOTIFICATION_TYPES},
        by_priority={p: int(raw.get(f"p:{p}", 0)) for p in PRIORITIES},
        last_updated=last or None,
    )


def notification_hash_from_counts(counts: NotificationCounts) -> list[Any]:
    """Field/value pairs for HSET; always holds 'total', so a warm hash is never empty."""
    pairs: list[Any] = ["total", counts.total, "unread", counts.unread, "lu",
                        counts.last_updated or 0]
    for name, value in counts.by_type.items():
        pairs += [f"t:{name}", value]
    for name, value in counts.by_priority.items():
        pairs += [f"p:{name}", value]
    return pairs
