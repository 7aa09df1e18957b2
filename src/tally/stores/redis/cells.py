"""Ticket cells on Redis: the MP registry, atomic multi-cell reads and cell rebuild markers."""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Collection, Sequence

from tally.core.cache import Cache
from tally.core.predicates import Materialized
from tally.stores import keys
from tally.stores.redis.cluster import scan_tenant
from tally.core.cells import Cell
from tally.stores.redis.counters import RedisCounters, _script, wrap_errors
from tally.stores.redis.encoder import KeyTable

NEG_INF = float("-inf")


@dataclass(frozen=True)
class TimedValue:
    """A warm timed cell as Redis holds it: members with scores, and removals still pending."""

    members: dict[str, int]
    negatives: dict[str, int]


@dataclass(frozen=True)
class Sums:
    """A compiled read of many counts, each Σ sign × cell over the same buckets of one MP.

    Built once per request shape (core/plans.py; the app's plans cache) and reused: between
    reads only the windows of the timed entries change. Read by sums.lua.
    """

    keys: list[str]
    head: tuple[str, ...]  # sums.lua's ARGV up to the windows: buckets, markers, signs, entries
    cells: tuple[Cell, ...]  # entry by entry, bucket by bucket: what a cold reply's positions name

    @classmethod
    def of(cls, tenant: str, mps: Sequence[Materialized],
           terms: Sequence[tuple[str, int]]) -> "Sums":
        """One entry per MP (repeats allowed), each summing `terms`: (bucket, sign) pairs."""
        table = KeyTable(keys.watermark_key(tenant))  # sums.lua reads it first
        entries: list[str] = []
        for mp in mps:
            counts = table(keys.mp_counts_key(tenant, mp.id))
            zsets = [table(keys.mp_zset_key(tenant, mp.id, b)) for b, _ in terms
                     ] if mp.score_field is not None else [0]
            if zsets != list(range(zsets[0], zsets[0] + len(zsets))):  # sums.lua relies on it
                raise AssertionError(f"the sorted sets of MP {mp.id} are not consecutive keys")
            entries += [str(counts), str(zsets[0])]
        buckets = [b for b, _ in terms]
        head = (str(len(terms)), *buckets, *(f"z:{b}" for b in buckets),
                *(str(sign) for _, sign in terms), str(len(mps)), *entries)
        return cls(table.keys, head, tuple(Cell(mp, b) for mp in mps for b, _ in terms))


@dataclass(frozen=True)
class WarmSums:
    """A warm read: the tenant's applied watermark (read first) and one sum per entry."""

    watermark: int
    sums: list[int]


@dataclass(frozen=True)
class Registry:
    version: str
    mps: dict[str, Materialized]


class TicketCounters:
    """Reads and rebuild bookkeeping for ticket cells; applies go through RedisCounters.apply."""

    def __init__(self, counters: RedisCounters, specs: Cache[str, Materialized]):
        self.counters = counters
        self.client = counters.client
        self._read = self.client.register_script(_script("read"))
        self._sums = self.client.register_script(_script("sums"))
        self._begin = self.client.register_script(_script("begin"))
        self._specs = specs  # registered specs parsed once (MP ids are digests of their specs)

    def _run_reads(self, table: KeyTable, commands: list[list[Any]]) -> list[Any]:
        if not commands:
            return []
        return self._read(keys=table.keys, args=[json.dumps(commands)])

    @wrap_errors
    def read_sums(self, sums: Sums,
                  windows: Sequence[tuple[float, float]]) -> WarmSums | list[Cell]:
        """Every count of `sums` and the tenant's applied watermark in one atomic round trip
        (sums.lua); else the cold cells.

        `windows[k]` is the [lo, hi) of the k-th timed entry of `sums`.
        """
        args = list(sums.head)
        for lo, hi in windows:
            args += ["-inf" if lo == NEG_INF else str(int(lo)), f"({int(hi)}"]
        reply = self._sums(keys=sums.keys, args=args)
        if reply[0] == 0:
            return WarmSums(int(reply[1] or 0), reply[2:])
        return [sums.cells[i] for i in reply[1:]]

    @wrap_errors
    def registry(self, tenant: str) -> Registry:
        """The registered MPs and the version an apply must be guarded with (one round trip)."""
        table = KeyTable()
        version, raw = self._run_reads(table, [["get", table(keys.mp_version_key(tenant))],
                                               ["hgetall", table(keys.mp_registry_key(tenant))]])
        flat = raw or []
        mps = {}
        for mp_id, spec in zip(flat[0::2], flat[1::2]):
            mps[mp_id] = self._spec(mp_id, spec)
        return Registry(version or "", mps)

    @wrap_errors
    def begin(self, tenant: str, cells: Sequence[Cell]) -> tuple[str, list[Cell]]:
        """Register the cells' MPs and set their markers; the token and the cells it holds."""
        token = secrets.token_hex(8)
        table = KeyTable(keys.mp_registry_key(tenant), keys.mp_version_key(tenant))
        mps = {cell.mp.id: cell.mp for cell in cells}
        plan = {"mps": [[mp.id, mp.spec, [table(keys.filter_mps_key(tenant, origin))
                                          for origin in mp.origins]]
                        for mp in mps.values()],
                "locks": [table(keys.group_lock_key(tenant, keys.cell_group(*cell.id)))
                          for cell in cells]}
        flags = self._begin(keys=table.keys,
                            args=[self.counters.lock_ttl_ms, token, json.dumps(plan)])
        return token, [cell for cell, flag in zip(cells, flags) if int(flag) == 1]

    # -- operator maintenance (see counting/ticket_maintenance.py) -------------------------------
    @wrap_errors
    def mp(self, tenant: str, mp_id: str) -> Materialized | None:
        """One registered MP, or None when it is not (or no longer) registered."""
        spec = self.client.hget(keys.mp_registry_key(tenant), mp_id)
        if spec is None:
            return None
        return self._spec(mp_id, spec)

    def _spec(self, mp_id: str, spec: str) -> Materialized:
        known = self._specs.get(mp_id)
        return known if known is not None else self._specs.put(mp_id, Materialized.from_spec(spec))

    @wrap_errors
    def warm_cells(self, tenant: str) -> list[Cell]:
        """Every warm cell of every registered MP, in MP id then bucket order."""
        mps = self.registry(tenant).mps
        ids = sorted(mps)
        pipe = self.client.pipeline(transaction=False)
        for mp_id in ids:
            pipe.hkeys(keys.mp_counts_key(tenant, mp_id))
        cells = []
        for mp_id, fields in zip(ids, pipe.execute() if ids else []):
            mp = mps[mp_id]
            timed = mp.score_field is not None
            cells += [Cell(mp, name[2:] if timed else name) for name in sorted(fields)
                      if name.startswith("z:") == timed]
        return cells

    @wrap_errors
    def rebuilding(self, tenant: str, cell: Cell) -> bool:
        """Whether a rebuild marker is set on the cell right now."""
        return bool(self.client.exists(keys.group_lock_key(tenant, keys.cell_group(*cell.id))))

    @wrap_errors
    def cell_value(self, tenant: str, cell: Cell) -> int | TimedValue | None:
        """A cell as stored (plain: its count; timed: members and negatives); None when cold."""
        counts = keys.mp_counts_key(tenant, cell.mp.id)
        if cell.mp.score_field is None:
            raw = self.client.hget(counts, cell.bucket)
            return None if raw is None else int(raw)
        pipe = self.client.pipeline(transaction=False)
        pipe.hexists(counts, f"z:{cell.bucket}")
        pipe.zrange(keys.mp_zset_key(tenant, cell.mp.id, cell.bucket), 0, -1, withscores=True)
        pipe.hgetall(keys.mp_negatives_key(tenant, cell.mp.id, cell.bucket))
        warm, members, negatives = pipe.execute()
        if not warm:
            return None
        return TimedValue({m: int(s) for m, s in members},
                          {m: int(n) for m, n in negatives.items()})

    @wrap_errors
    def origins(self, tenant: str, mp_id: str) -> list[str]:
        """The filter (and profile) ids whose origin sets name the MP, sorted."""
        found = []
        for key in scan_tenant(self.client, tenant, keys.origin_sets_pattern(tenant)):
            if self.client.sismember(key, mp_id):
                found.append(keys.origin_filter_of_key(tenant, key) or "")
        return sorted(found)

    @wrap_errors
    def filter_mps(self, tenant: str, filter_id: str) -> set[str]:
        """The MP ids a filter (or profile) was materialised into."""
        return set(self.client.smembers(keys.filter_mps_key(tenant, filter_id)))

    @wrap_errors
    def drop_mps(self, tenant: str, mp_ids: Collection[str] | None,
                 filter_id: str | None = None) -> int:
        """Make MPs cold and unregister them (None: every MP and origin set); returns keys deleted.

        No registry version bump is needed: an apply computed with a removed MP only touches its
        cells, now cold, which apply.lua skips. Only a warm count of an unregistered MP would be
        wrong (no apply maintains it), so the counts hashes go first and again last; between, the
        sweep deletes the cells' markers, so a rebuild begun before the unregistering cannot
        install (a marker that exists through the whole SCAN is always returned by it).
        """
        everything = mp_ids is None
        registry = keys.mp_registry_key(tenant)
        ids = sorted(self.client.hkeys(registry) if mp_ids is None else mp_ids)
        counts = [keys.mp_counts_key(tenant, mp_id) for mp_id in ids]
        removed = int(self.client.delete(*counts)) if counts else 0
        if ids:
            self.client.hdel(registry, *ids)
        if ids and filter_id is not None:
            self.client.srem(keys.filter_mps_key(tenant, filter_id), *ids)
        wanted, batch = set(ids), []
        for key in scan_tenant(self.client, tenant):
            owner = keys.mp_of_key(tenant, key)
            if (owner in wanted or (everything and owner is not None)
                    or (everything and keys.origin_filter_of_key(tenant, key) is not None)):
                batch.append(key)
            if len(batch) >= 500:
                removed += self._delete_with_owners(tenant, batch)
                batch = []
        removed += self._delete_with_owners(tenant, batch)
        if counts:
            removed += int(self.client.delete(*counts))
        return removed

    def _delete_with_owners(self, tenant: str, batch: list[str]) -> int:
        """Delete keys together with their MPs' counts hashes, so no warm cell loses its zset."""
        owners = sorted({mp for mp in (keys.mp_of_key(tenant, key) for key in batch) if mp})
        names = dict.fromkeys(batch + [keys.mp_counts_key(tenant, mp) for mp in owners])
        return int(self.client.delete(*names)) if names else 0
