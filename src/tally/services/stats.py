"""What the counters hold, per tenant (`tally cache stats`): keys, memory, warm users, backlog.

A tenant is warm when Redis holds any counter key of it, cold otherwise (every read of a cold
tenant recomputes from SQL first). Memory is Redis's own estimate (MEMORY USAGE) of each key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from tally.stores import keys

from tally.stores.sql import notification_counts as sql_counts
from tally.stores.sql.models import OutboxRow
from tally.stores.redis.cluster import scan_tenant
from tally.stores.redis.counters import wrap_errors

if TYPE_CHECKING:
    from tally.services.container import Services

PIPELINE_CHUNK = 500


@dataclass(frozen=True)
class TenantStats:
    """One tenant's counters in Redis and its outbox rows not yet applied."""

    tenant: str
    keys: int
    memory_bytes: int
    users: int  # users with notifications in SQL
    warm_users: int  # of them, those whose notification counters are in Redis
    predicates: int  # materialised predicates registered for ticket counts
    outbox_pending: int
    outbox_oldest_ms: int | None  # created_at of the oldest pending row

    @property
    def warm(self) -> bool:
        return self.keys > 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "warm": self.warm}


def pending_by_tenant(services: "Services") -> dict[str, tuple[int, int]]:
    """Per tenant: outbox rows not yet applied and the created_at (ms) of the oldest."""
    with services.db.snapshot() as session:
        rows = session.execute(select(OutboxRow.tenant_id, func.count(),
                                      func.min(OutboxRow.created_at))
                               .where(OutboxRow.applied_at.is_(None))
                               .group_by(OutboxRow.tenant_id)).all()
    return {tenant: (int(count), int(oldest)) for tenant, count, oldest in rows}


@wrap_errors
def _redis_side(services: "Services", tenant: str) -> tuple[int, int, int, set[str]]:
    """Keys, bytes and registered predicates of a tenant, and the users whose hash is warm."""
    client = services.counters.client
    found = sorted(set(scan_tenant(client, tenant)))
    memory = 0
    for start in range(0, len(found), PIPELINE_CHUNK):
        pipe = client.pipeline(transaction=False)
        for key in found[start:start + PIPELINE_CHUNK]:
            pipe.memory_usage(key)
        memory += sum(int(size or 0) for size in pipe.execute())
    head = keys.notification_counts_key(tenant, "x")[:-1]
    warm_users = {key[len(head):] for key in found if key.startswith(head)}
    predicates = int(client.hlen(keys.mp_registry_key(tenant)))
    return len(found), memory, predicates, warm_users


def tenant_stats(services: "Services", tenant: str,
                 pending: dict[str, tuple[int, int]] | None = None) -> TenantStats:
    """Stats of one tenant; `pending` from pending_by_tenant saves a query per tenant.

    Raises StoreUnavailable when the counter store cannot be reached.
    """
    pending = pending_by_tenant(services) if pending is None else pending
    with services.db.snapshot() as session:
        users = sql_counts.notification_users(session, tenant)
    count, memory, predicates, warm = _redis_side(services, tenant)
    rows, oldest = pending.get(tenant, (0, None))
    return TenantStats(tenant, count, memory, len(users), len(warm.intersection(users)),
                       predicates, rows, oldest)


@wrap_errors
def used_memory(services: "Services") -> int | None:
    """The counter Redis's used_memory (the sum over masters on a cluster), if it reports it."""
    info = services.counters.client.info("memory")
    if "used_memory" in info:
        return int(info["used_memory"])
    per_node = [int(node["used_memory"]) for node in info.values()
                if isinstance(node, dict) and "used_memory" in node]
    return sum(per_node) if per_node else None
