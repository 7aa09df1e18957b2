"""The counter store on Redis: atomic apply and install scripts, and one-round-trip reads."""
from __future__ import annotations

import json
import logging
import secrets
from functools import wraps
from importlib import resources
from typing import Any, Callable, Iterable, Sequence, TypeVar

import redis

from tally.counting.model import NOTIFICATION_TYPES, PRIORITIES, NotificationCounts
from tally.errors import GuardChanged, RebuildBusy, StoreUnavailable
from tally.stores import keys
from tally.stores.base import ApplyResult, Install, Key, Op, OutboxDelta

log = logging.getLogger("tally.stores.redis")
T = TypeVar("T")

APPLY_OK, APPLY_BUSY, APPLY_GUARD = 0, 1, 2
INSTALL_OK, INSTALL_LOST = 0, 1


def _script(name: str) -> str:
    return (resources.files("tally.stores") / "lua" / f"{name}.lua").read_text()


def wrap_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Turn any redis failure into StoreUnavailable, the one type the SQL fallback catches."""

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as error:
            raise StoreUnavailable(f"counter store: {error.__class__.__name__}: {error}") from error

    return wrapper


class _KeyTable:
    """Collects distinct keys into a KEYS list and hands out their 1-based Lua indices."""

    def __init__(self, *fixed: str):
        self.keys: list[str] = list(fixed)
        self._index = {key: i + 1 for i, key in enumerate(fixed)}

    def __call__(self, key: str) -> int:
        if key not in self._index:
            self.keys.append(key)
            self._index[key] = len(self.keys)
        return self._index[key]

    def op(self, op: Op) -> list[Any]:
        return [op.name, self(op.key), *(self(a) if isinstance(a, Key) else a for a in op.args)]


class RedisCounters:
    """Counters of every tenant in one Redis (or Redis Cluster) with decode_responses=True."""

    def __init__(self, client: "redis.Redis", lock_ttl_ms: int = 30_000):
        self.client = client
        self.lock_ttl_ms = lock_ttl_ms
        self._apply = client.register_script(_script("apply"))
        self._install = client.register_script(_script("install"))

    @wrap_errors
    def ping(self) -> bool:
        return bool(self.client.ping())

    @wrap_errors
    def apply(self, tenant: str, deltas: Iterable[OutboxDelta], now_ms: int,
              guards: Sequence[tuple[str, str]] = ()) -> ApplyResult:
        """Apply outbox deltas once each, all or nothing.

        Raises RebuildBusy (nothing written) while a touched group is being rebuilt, and
        GuardChanged when a guard key (e.g. the filter registry version) no longer holds its value.
        """
        table = _KeyTable(keys.applied_key(tenant))
        locks: dict[str, None] = {}
        events = []
        for delta in deltas:
            groups = []
            for g in delta.groups:
                locks[g.group] = None
                groups.append({"warm": table(g.warm_key), "field": g.warm_field,
                               "snap": table(keys.group_snapshot_key(tenant, g.group)),
                               "ops": [table.op(op) for op in g.ops]})
            events.append({"id": str(delta.outbox_id), "groups": groups})
        if not events:
            return ApplyResult(0, 0)
        body = {"locks": [table(keys.group_lock_key(tenant, g)) for g in locks],
                "guards": [[table(key), value] for key, value in guards], "events": events}
        reply = self._apply(keys=table.keys, args=[now_ms, json.dumps(body)])
        if reply[0] == APPLY_BUSY:
            raise RebuildBusy(f"rebuild in progress: {table.keys[reply[1] - 1]}")
        if reply[0] == APPLY_GUARD:
            raise GuardChanged(table.keys[reply[1] - 1])
        return ApplyResult(applied=int(reply[1]), duplicates=int(reply[2]))

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
        table = _KeyTable(keys.group_lock_key(tenant, plan.group),
                          keys.group_snapshot_key(tenant, plan.group), keys.applied_key(tenant))
        body = {"snap": [str(i) for i in plan.snapshot_ids],
                "writes": [table.op(op) for op in plan.writes]}
        return self._install(keys=table.keys, args=[token, json.dumps(body)], client=client)

    @wrap_errors
    def install(self, tenant: str, token: str, plan: Install) -> bool:
        """Write a rebuilt group and clear its marker; False if the marker was lost meanwhile."""
        return int(self._install_call(tenant, token, plan)) == INSTALL_OK

    @wrap_errors
    def install_many(self, tenant: str, token: str, plans: Sequence[Install]) -> list[bool]:
        """Install several groups in one round trip (each install atomic on its own)."""
        pipe = self.client.pipeline(transaction=False)
        for plan in plans:
            self._install_call(tenant, token, plan, client=pipe)
        return [int(reply) == INSTALL_OK for reply in pipe.execute()] if plans else []

    @wrap_errors
    def applied_among(self, tenant: str, outbox_ids: Sequence[int]) -> set[int]:
        """Which of these outbox ids the counters have already applied (deduped if seen again)."""
        if not outbox_ids:
            return set()
        scores = self.client.zmscore(keys.applied_key(tenant), [str(i) for i in outbox_ids])
        return {i for i, score in zip(outbox_ids, scores) if score is not None}

    @wrap_errors
    def read_notifications(self, tenant: str, user: str) -> NotificationCounts | None:
        """One HGETALL; None when the user's counters are cold."""
        raw = self.client.hgetall(keys.notification_counts_key(tenant, user))
        return notification_counts_from_hash(raw) if raw else None

    @wrap_errors
    def delete_tenant_keys(self, tenant: str, match: str | None = None) -> int:
        """Delete a tenant's keys (all, or those matching a suffix pattern); returns how many."""
        pattern = keys.tenant_prefix(tenant) + (match or "*")
        removed = 0
        batch: list[str] = []
        for key in self.client.scan_iter(match=pattern, count=500):
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
