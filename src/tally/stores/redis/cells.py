"""Ticket cells on Redis: the MP registry, atomic multi-cell reads and cell rebuild markers."""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Collection, Sequence

from tally.core.cache import Cache
from tally.core.cells import TRIM_MARGIN_MS, UNTRIMMED
from tally.core.predicates import Materialized
from tally.stores import keys
from tally.stores.redis.cluster import scan_tenant
from tally.core.cells import Cell
from tally.stores.redis.counters import RedisCounters, _script, wrap_errors
from tally.stores.redis.encoder import KeyTable

NEG_INF = float("-inf")
# Reads are recorded per MP to the minute, and by one plan of one process at most once a minute
# (see Sums.recorded), so the warm read costs no Redis write in between. The value recorded is
# the END of the read's minute: an MP is never dropped sooner than the setting after its last
# read, and at most a minute later.
READ_STAMP_MS = 60_000


def read_stamp(now_ms: int) -> int:
    """The last-read value recorded for an MP read at `now_ms`: the end of its minute."""
    return now_ms - now_ms % READ_STAMP_MS + READ_STAMP_MS


@dataclass(frozen=True)
class TimedValue:
    """A warm timed cell as Redis holds it: members with scores, removals still pending, and the
    floor: how many members scored below `cutoff` were folded into a count (core/cells.py)."""

    members: dict[str, int]
    negatives: dict[str, int]
    floor: int = 0
    cutoff: int = UNTRIMMED


@dataclass(frozen=True)
class Sums:
    """A compiled read of many counts, each Σ sign × cell over some buckets of one MP.

    Built once per request shape (core/plans.py; the app's plans cache) and reused: between
    reads only the windows of the timed entries change. Read by sums.lua.
    """

    keys: list[str]
    head: tuple[str, ...]  # sums.lua's ARGV up to the windows: bucket lists, then entries
    cells: tuple[Cell, ...]  # entry by entry, bucket by bucket: what a cold reply's positions name
    mp_ids: tuple[str, ...]  # each MP once: whose last read a recorded read sets
    # The minute this plan last recorded its read in this process (a one-slot box: the plan is
    # shared by the requests of its shape; a lost race only records twice).
    recorded: list[int] = field(default_factory=lambda: [-1], compare=False)

    @classmethod
    def of(cls, tenant: str,
           entries: Sequence[tuple[Materialized, Sequence[tuple[str, int]]]]) -> "Sums":
        """One count per (MP, terms) entry (repeats allowed), each summing its `terms`:
        (bucket, sign) pairs."""
        table = KeyTable(keys.watermark_key(tenant))  # sums.lua reads it first
        lists: dict[tuple[tuple[str, int], ...], int] = {}  # terms -> its 1-based list
        triples: list[str] = []
        for mp, terms in entries:
            terms = tuple(terms)
            if not terms:
                raise ValueError(f"an entry of MP {mp.id} sums no bucket")
            counts = table(keys.mp_counts_key(tenant, mp.id))
            first = 0
            if mp.score_field is not None:  # sums.lua reads an entry's sorted sets in a row
                zsets = [keys.mp_zset_key(tenant, mp.id, b) for b, _ in terms]
                at = [table(zset) for zset in zsets]
                first = at[0]
                if at != list(range(first, first + len(at))):  # listed before in another order
                    first = len(table.keys) + 1
                    table.keys.extend(zsets)  # a key may repeat in KEYS
            triples += [str(counts), str(first), str(lists.setdefault(terms, len(lists) + 1))]
        table(keys.mp_reads_key(tenant))  # last, as sums.lua expects
        head: list[str] = [str(len(lists))]
        for terms in lists:
            buckets = [b for b, _ in terms]
            fields = [keys.timed_fields(b) for b in buckets]
            head += [str(len(terms)), *buckets, *(cutoff for cutoff, _ in fields),
                     *(floor for _, floor in fields), *(str(sign) for _, sign in terms)]
        head += [str(len(entries)), *triples]
        return cls(table.keys, tuple(head),
                   tuple(Cell(mp, b) for mp, terms in entries for b, _ in terms),
                   tuple(dict.fromkeys(mp.id for mp, _ in entries)))


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
        self._trim = self.client.register_script(_script("trim"))
        self._drop = self.client.register_script(_script("drop"))
        # registered specs parsed once (MP ids are digests of their specs); bounded: the app's
        # `specs` Cache (CACHE_SIZES, 65,536 by default)
        self._specs = specs

    def _run_reads(self, table: KeyTable, commands: list[list[Any]]) -> list[Any]:
        if not commands:
            return []
        return self._read(keys=table.keys, args=[json.dumps(commands)])

    @wrap_errors
    def read_sums(self, sums: Sums, windows: Sequence[tuple[float, float]],
                  now_ms: int) -> WarmSums | list[Cell]:
        """Every count of `sums` and the tenant's applied watermark in one atomic round trip
        (sums.lua); else the cold cells.

        `windows[k]` is the [lo, hi) of the k-th timed entry of `sums`. A warm read at `now_ms`
        also records the MPs as read, when this plan has not yet done so this minute.
        """
        args = list(sums.head)
        for lo, hi in windows:
            args += ["-inf" if lo == NEG_INF else str(int(lo)), str(int(hi))]
        stamp = read_stamp(now_ms)
        record = sums.recorded[0] != stamp
        if record:
            args += [str(stamp), *sums.mp_ids]
        reply = self._sums(keys=sums.keys, args=args)
        if reply[0] == 0:
            if record:
                sums.recorded[0] = stamp
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
    def begin(self, tenant: str, cells: Sequence[Cell], now_ms: int
              ) -> tuple[str, list[Cell], dict[str, int | None]]:
        """Register the cells' MPs (read at `now_ms`, raising timed MPs' recorded reach to
        theirs) and set their markers; the token, the cells it holds, and per MP id the reach now
        recorded (None for a plain MP)."""
        token = secrets.token_hex(8)
        table = KeyTable(keys.mp_registry_key(tenant), keys.mp_version_key(tenant),
                         keys.mp_reach_key(tenant), keys.mp_reads_key(tenant))
        mps = {cell.mp.id: cell.mp for cell in cells}
        buckets: dict[str, dict[str, None]] = {}
        for cell in cells:
            buckets.setdefault(cell.mp.id, {})[f"c:{cell.bucket}"] = None
        plan = {"mps": [[mp.id, mp.spec, [table(keys.filter_mps_key(tenant, origin))
                                          for origin in mp.origins],
                         table(keys.mp_parts_key(tenant, mp.id)),
                         [f"o:{origin}" for origin in mp.origins] + list(buckets[mp.id]),
                         mp.reach if mp.score_field is not None else False]
                        for mp in mps.values()],
                "locks": [table(keys.group_lock_key(tenant, keys.cell_group(*cell.id)))
                          for cell in cells]}
        flags, reaches = self._begin(keys=table.keys, args=[self.counters.lock_ttl_ms, token,
                                                            read_stamp(now_ms), json.dumps(plan)])
        recorded = {mp_id: (None if mps[mp_id].score_field is None else int(reach))
                    for mp_id, reach in zip(mps, reaches)}
        return token, [cell for cell, flag in zip(cells, flags) if int(flag) == 1], recorded

    @wrap_errors
    def trim(self, tenant: str, cells: Sequence[Cell], now_ms: int) -> list[int]:
        """Fold what no recorded window can reach in each warm timed cell (trim.lua: one atomic
        call per cell, so Redis is never held for more than one cell); per cell the members
        folded, -1 while it is rebuilt, -2 when cold or its MP has no recorded reach."""
        reach = keys.mp_reach_key(tenant)
        folded = []
        for cell in cells:
            cutoff, floor = keys.timed_fields(cell.bucket)
            folded.append(int(self._trim(
                keys=[keys.group_lock_key(tenant, keys.cell_group(*cell.id)),
                      keys.mp_counts_key(tenant, cell.mp.id),
                      keys.mp_zset_key(tenant, cell.mp.id, cell.bucket), reach],
                args=[cell.mp.id, cutoff, floor, now_ms, TRIM_MARGIN_MS])))
        return folded

    # -- forgetting what nobody reads (see services/ticket_maintenance.drop_idle) ---------------
    @wrap_errors
    def last_reads(self, tenant: str, adopt_ms: int) -> dict[str, int]:
        """Every registered MP's last read (epoch ms); one never recorded (registered before
        reads were) is recorded as read at `adopt_ms` first. A record whose MP is no longer
        registered is removed."""
        registry, reads = keys.mp_registry_key(tenant), keys.mp_reads_key(tenant)
        pipe = self.client.pipeline(transaction=False)
        pipe.hkeys(registry)
        pipe.hgetall(reads)
        ids, raw = pipe.execute()
        found = {mp_id: int(raw[mp_id]) for mp_id in ids if mp_id in raw}
        unregistered = [mp_id for mp_id in raw if mp_id not in found]
        unseen = [mp_id for mp_id in ids if mp_id not in found]
        pipe = self.client.pipeline(transaction=False)
        # Removing a record an MP registered meanwhile only postpones its drop (drop.lua keeps
        # an MP without one, and the next run records it).
        if unregistered:
            pipe.hdel(reads, *unregistered)
        for mp_id in unseen:
            pipe.hsetnx(reads, mp_id, read_stamp(adopt_ms))
        pipe.execute()
        found.update((mp_id, read_stamp(adopt_ms)) for mp_id in unseen)
        return found

    @wrap_errors
    def drop_mp(self, tenant: str, mp_id: str, cutoff_ms: int) -> int:
        """Drop one MP and every key of its cells if it was last read before `cutoff_ms` and no
        cell of it is being rebuilt (drop.lua, one atomic step). Returns drop.lua's code:
        0 dropped, 1 read since, 2 a cell is being rebuilt, 3 not registered, 4 changed while
        listing its keys (only after a retry)."""
        code = 4
        for _ in range(2):  # the parts hash grows only while a rebuild begins: list once more
            parts_key = keys.mp_parts_key(tenant, mp_id)
            pipe = self.client.pipeline(transaction=False)
            pipe.hkeys(parts_key)
            pipe.hkeys(keys.mp_counts_key(tenant, mp_id))
            parts, fields = pipe.execute()
            # MPs registered before parts were recorded: their warm cells name the buckets
            buckets = dict.fromkeys([p[2:] for p in sorted(parts) if p.startswith("c:")]
                                    + [f[2:] if f[:2] in ("z:", "f:") else f for f in fields])
            origins = [p[2:] for p in sorted(parts) if p.startswith("o:")]
            locks = [keys.group_lock_key(tenant, keys.cell_group(mp_id, b)) for b in buckets]
            data = keys.mp_data_keys(tenant, mp_id, buckets)
            code = int(self._drop(
                keys=[keys.mp_registry_key(tenant), keys.mp_version_key(tenant),
                      keys.mp_reads_key(tenant), parts_key, keys.mp_reach_key(tenant),
                      *locks, *data,
                      *(keys.filter_mps_key(tenant, origin) for origin in origins)],
                args=[mp_id, int(cutoff_ms), len(parts), len(locks), len(data)]))
            if code != 4:
                break
        return code

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
        pipe.hmget(counts, *keys.timed_fields(cell.bucket))
        pipe.zrange(keys.mp_zset_key(tenant, cell.mp.id, cell.bucket), 0, -1, withscores=True)
        pipe.hgetall(keys.mp_negatives_key(tenant, cell.mp.id, cell.bucket))
        (cutoff, floor), members, negatives = pipe.execute()
        if cutoff is None:
            return None
        return TimedValue({m: int(s) for m, s in members},
                          {m: int(n) for m, n in negatives.items()}, int(floor or 0),
                          int(cutoff))

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
            self.client.hdel(keys.mp_reach_key(tenant), *ids)
            self.client.hdel(keys.mp_reads_key(tenant), *ids)
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
        if everything:
            removed += int(self.client.delete(keys.mp_reads_key(tenant)))
        return removed

    def _delete_with_owners(self, tenant: str, batch: list[str]) -> int:
        """Delete keys together with their MPs' counts hashes, so no warm cell loses its zset."""
        owners = sorted({mp for mp in (keys.mp_of_key(tenant, key) for key in batch) if mp})
        names = dict.fromkeys(batch + [keys.mp_counts_key(tenant, mp) for mp in owners])
        return int(self.client.delete(*names)) if names else 0
