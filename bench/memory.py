"""Redis bytes per live ticket of a tenant, as `tally cache stats` counts them, after a trim pass.

Run by bench/run.py once the tenant's warm ticket-count reads have been made: a trim pass (the
scheduled job's, at the bench's clock), then the tenant's memory (MEMORY USAGE of every key,
services/stats.py) ÷ its live tickets, with what the timed cells hold to explain the figure:
members still in sorted sets, members folded into floors, and the sorted sets' own bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from tally.core.clock import epoch_ms
from tally.services import ticket_maintenance
from tally.services.stats import tenant_stats
from tally.stores import keys
from tally.stores.sql.models import Ticket


@dataclass(frozen=True)
class Memory:
    tickets: int  # live tickets of the tenant
    bytes: int  # `tally cache stats` memory of the tenant
    keys: int
    cells: int  # warm timed cells
    members: int  # members their sorted sets hold
    floor: int  # members folded into floors
    zset_bytes: int  # MEMORY USAGE of those sorted sets
    folded: int  # members this trim pass folded

    @property
    def per_ticket(self) -> float:
        return self.bytes / self.tickets if self.tickets else float("nan")


def measure(services: Any, tenant: str) -> Memory:
    """Trim the tenant's timed cells now, then measure what its counters take."""
    trimmed = ticket_maintenance.trim(services, tenant, epoch_ms(services.clock()))
    stats = tenant_stats(services, tenant)
    with services.db.snapshot() as session:
        live = session.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.tenant_id == tenant, Ticket.deleted.is_(False)))
    client = services.counters.client
    cells = [c for c in services.ticket_counters.warm_cells(tenant) if c.mp.score_field]
    pipe = client.pipeline(transaction=False)
    for cell in cells:
        zset = keys.mp_zset_key(tenant, cell.mp.id, cell.bucket)
        pipe.zcard(zset)
        pipe.memory_usage(zset, samples=0)
        pipe.hget(keys.mp_counts_key(tenant, cell.mp.id), keys.timed_fields(cell.bucket)[1])
    replies = pipe.execute() if cells else []
    return Memory(int(live or 0), stats.memory_bytes, stats.keys, len(cells),
                  sum(int(n) for n in replies[0::3]), sum(int(n or 0) for n in replies[2::3]),
                  sum(int(n or 0) for n in replies[1::3]), trimmed.folded)
