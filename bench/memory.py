"""Redis bytes per live ticket of a tenant, as `tally cache stats` counts them, after a trim pass.

Run by bench/run.py once the tenant's warm ticket-count reads have been made: a trim pass (the
scheduled job's, at the bench's clock), then the tenant's memory (MEMORY USAGE of every key,
services/stats.py) ÷ its live tickets, with what the timed cells hold to explain the figure:
members still in sorted sets, members folded into floors, and the sorted sets' own bytes.

Alone, `python -m bench.memory [--tickets N] [--db postgres]` makes just that row: seed the large
tenant, make the bench's two ticket-count reads (cold, then warm) in-process, and measure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
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


def main(argv: list[str] | None = None) -> int:
    # load order: the bench's harness (and its tally app) only when run alone, not by bench.run
    from bench import calls, report
    from bench.run import LARGE_TENANT
    from bench.seed import seed_tenant
    from bench.stack import Stack
    from tally.app import create_app
    from tally.dev import keys as devkeys
    from tally.settings import from_env
    from tally.stores.sql.db import Database

    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--db", default="postgres", choices=sorted(report.DB_NAMES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-memory-") as workdir:
        with Stack(args.db, Path(workdir)) as stack:
            db = Database(stack.db_url)
            seed_tenant(db, LARGE_TENANT, args.tickets, 0, 1, devkeys.DEV_REALM,
                        lambda line: print(line, file=sys.stderr))
            db.engine.dispose()
            app = create_app(from_env(stack.env()))
            client = app.test_client()
            for profile in (False, True):
                call = calls.ticket_call(str(stack.var_dir), LARGE_TENANT, profile)
                for _ in range(2):
                    response = client.open(call.path, method=call.method, headers=call.headers,
                                           data=call.body)
                    if response.status_code != 200:
                        raise RuntimeError(f"ticket count answered {response.status_code}")
            result = report.DbResult(args.db, memory=measure(app.extensions["tally"],
                                                             LARGE_TENANT))
            app.extensions["tally"].db.engine.dispose()
    print(report.table([result]).splitlines()[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
