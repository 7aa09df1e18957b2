"""Ticket cells on Redis: the MP registry, atomic multi-cell reads and cell rebuild markers."""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Sequence

from tally.counting.predicates import Materialized
from tally.stores import keys
from tally.stores.redis_counters import RedisCounters, _KeyTable, _script, wrap_errors

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Cell:
    """One (MP, bucket) counter; `window` (timed MPs only) is the half-open [lo, hi) to count."""

    mp: Materialized
    bucket: str

    @property
    def group(self) -> str:
        return keys.cell_group(self.mp.id, self.bucket)


@dataclass(frozen=True)
class Registry:
    version: str
    mps: dict[str, Materialized]


class TicketCounters:
    """Reads and rebuild bookkeeping for ticket cells; applies go through RedisCounters.apply."""

    def __init__(self, counters: RedisCounters):
        self.counters = counters
        self.client = counters.client
        self._read = self.client.register_script(_script("read"))
        self._begin = self.client.register_script(_script("begin"))
        self._specs: dict[str, Materialized] = {}

    def _run_reads(self, table: _KeyTable, commands: list[list[Any]]) -> list[Any]:
        if not commands:
            return []
        return self._read(keys=table.keys, args=[json.dumps(commands)])

    @wrap_errors
    def read(self, tenant: str, cells: Sequence[Cell],
             windows: Sequence[tuple[float, float] | None]) -> list[int | None]:
        """Each cell's count (within its window for timed MPs) in one atomic round trip.

        None marks a cold cell. `windows[i]` is the window of `cells[i]` (None for plain MPs).
        """
        table = _KeyTable()
        commands: list[list[Any]] = []
        for cell, window in zip(cells, windows):
            counts = table(keys.mp_counts_key(tenant, cell.mp.id))
            if cell.mp.score_field is None:
                commands.append(["hget", counts, cell.bucket])
            else:
                lo, hi = window
                commands.append(["hexists", counts, f"z:{cell.bucket}"])
                commands.append(["zcount", table(keys.mp_zset_key(tenant, cell.mp.id, cell.bucket)),
                                 "-inf" if lo == NEG_INF else str(int(lo)), f"({int(hi)}"])
        replies = iter(self._run_reads(table, commands))
        values: list[int | None] = []
        for cell in cells:
            if cell.mp.score_field is None:
                raw = next(replies)
                values.append(None if raw is None else int(raw))
            else:
                warm, count = next(replies), next(replies)
                values.append(int(count) if warm else None)
        return values

    @wrap_errors
    def registry(self, tenant: str) -> Registry:
        """The registered MPs and the version an apply must be guarded with (one round trip)."""
        table = _KeyTable()
        version, raw = self._run_reads(table, [["get", table(keys.mp_version_key(tenant))],
                                               ["hgetall", table(keys.mp_registry_key(tenant))]])
        flat = raw or []
        mps = {}
        for mp_id, spec in zip(flat[0::2], flat[1::2]):
            if mp_id not in self._specs:
                self._specs[mp_id] = Materialized.from_spec(spec)
            mps[mp_id] = self._specs[mp_id]
        return Registry(version or "", mps)

    @wrap_errors
    def begin(self, tenant: str, cells: Sequence[Cell]) -> tuple[str, list[Cell]]:
        """Register the cells' MPs and set their markers; returns the token and the cells it holds."""
        token = secrets.token_hex(8)
        table = _KeyTable(keys.mp_registry_key(tenant), keys.mp_version_key(tenant))
        mps = {cell.mp.id: cell.mp for cell in cells}
        plan = {"mps": [[mp.id, mp.spec, [table(keys.filter_mps_key(tenant, origin))
                                          for origin in mp.origins]]
                        for mp in mps.values()],
                "locks": [table(keys.group_lock_key(tenant, cell.group)) for cell in cells]}
        flags = self._begin(keys=table.keys, args=[self.counters.lock_ttl_ms, token,
                                                    json.dumps(plan)])
        return token, [cell for cell, flag in zip(cells, flags) if int(flag) == 1]
