"""Outbox deltas as apply.lua calls: compact, bounded in size, every key once in KEYS.

The deltas come netted per cell and per counter (tally.core.deltas), so each becomes ops as is:
one group entry per notification row and per touched ticket cell, which apply.lua checks for
warmth and snapshot once per event and group. A batch is cut into calls of at most
MAX_OPS_PER_CALL ops, never inside an event, because a script holds Redis for its whole run
(reads wait meanwhile); each call is atomic and dedupes its events on its own, so calls need not
run together. The body is flat arrays with numeric op codes (apply.lua's header has the layout):
a batch holds tens of thousands of groups, and an object per group and op cost more to build,
encode and decode than the ops cost to apply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tally.core.cache import Cache
from tally.core.cells import CellDeltas, NotificationDelta, OutboxDelta
from tally.stores import keys

MAX_OPS_PER_CALL = 5000
# apply.lua's op codes (see its header for the body's layout; 2 was a retired INCRBY).
HINCRBY, HMAX, ZMOVE = 1, 3, 4
CellKeys = Cache[tuple[str, str, str, bool], tuple[str, ...]]


class KeyTable:
    """Collects distinct keys into a script's KEYS list and hands out their 1-based indices."""

    def __init__(self, *fixed: str):
        self.keys: list[str] = list(fixed)
        self._index = {key: i + 1 for i, key in enumerate(fixed)}

    def __call__(self, key: str) -> int:
        found = self._index.get(key)
        if found is None:
            self.keys.append(key)
            found = self._index[key] = len(self.keys)
        return found


@dataclass
class ApplyCall:
    """One apply.lua call: its KEYS, its JSON body, and the outbox ids it carries."""

    keys: list[str]
    body: str
    outbox_ids: list[int] = field(default_factory=list)


def _cell_keys(tenant: str, mp: str, bucket: str, timed: bool) -> tuple[str, ...]:
    """A ticket cell's rebuild marker, snapshot set and counts hash; for a timed cell also its
    sorted set and negatives hash (key names are checked; the app's `cell_keys` cache keeps
    them, so each is worked out once, not once per event)."""
    group = keys.cell_group(mp, bucket)
    names = (keys.group_lock_key(tenant, group), keys.group_snapshot_key(tenant, group),
             keys.mp_counts_key(tenant, mp))
    if timed:
        names += (keys.mp_zset_key(tenant, mp, bucket), keys.mp_negatives_key(tenant, mp, bucket))
    return names


class _Encoder:
    """Builds one call. A group entry is [warm key, warm field or false, snapshot set, op...]."""

    def __init__(self, tenant: str, guards: Sequence[tuple[str, str]],
                 cell_keys: CellKeys | None = None):
        self.tenant = tenant
        self.cell_keys = cell_keys
        self.key = KeyTable(keys.applied_key(tenant))
        self.guards = [[self.key(name), value] for name, value in guards]
        self.locks: dict[int, None] = {}  # rebuild marker indices, in first-seen order
        self.events: list[list[Any]] = []
        self.outbox_ids: list[int] = []
        self.ops = 0

    def add(self, delta: OutboxDelta) -> None:
        event: list[Any] = [str(delta.outbox_id)]
        if delta.notification is not None:
            self._add_notification(event, delta.notification)
        if delta.cells is not None:
            self._add_cells(event, delta.cells)
        self.events.append(event)
        self.outbox_ids.append(delta.outbox_id)

    def _add_notification(self, event: list[Any], delta: NotificationDelta) -> None:
        """The user's counts hash: warm while it exists; lastUpdated kept at its maximum."""
        key, group = self.key, keys.notification_group(delta.user)
        self.locks[key(keys.group_lock_key(self.tenant, group))] = None
        counts = key(keys.notification_counts_key(self.tenant, delta.user))
        entry = [counts, False, key(keys.group_snapshot_key(self.tenant, group))]
        for name, n in delta.counts.items():
            entry += (HINCRBY, counts, name, n)
        entry += (HMAX, counts, "lu", delta.at)
        event.append(entry)
        self.ops += len(delta.counts) + 1

    def _add_cells(self, event: list[Any], cells: CellDeltas) -> None:
        """One entry per touched cell: a row's cells are nearly all distinct, so this is the
        batch's inner loop. A plain cell is warm while its counts hash has the bucket's field, a
        timed cell while it has z:<bucket> (its cutoff, which apply.lua reads from there)."""
        # The bound method: calling the table itself looks __call__ up on every key.
        tenant, key, locks = self.tenant, self.key.__call__, self.locks
        get = self.cell_keys.get if self.cell_keys is not None else None  # a hit: one lookup
        ops = 0
        for (mp, bucket), n in cells.plain.items():
            cell = (tenant, mp, bucket, False)
            lock, snapshot, counts = (get and get(cell)) or self._named(cell)
            locks[key(lock)] = None
            counts_index = key(counts)
            if n:
                event.append([counts_index, bucket, key(snapshot), HINCRBY, counts_index, bucket,
                              n])
                ops += 1
            else:
                event.append([counts_index, bucket, key(snapshot)])
        for (mp, bucket), moves in cells.timed.items():
            cell = (tenant, mp, bucket, True)
            lock, snapshot, counts, zset, negatives = (get and get(cell)) or self._named(cell)
            locks[key(lock)] = None
            entry = [key(counts), f"z:{bucket}", key(snapshot)]  # keys.timed_fields, inline
            if moves:  # all of them may have netted away
                zset_index, negatives_index = key(zset), key(negatives)
                for member, score, n in moves:
                    entry += (ZMOVE, zset_index, negatives_index, member, score, n)
                ops += len(moves)
            event.append(entry)
        self.ops += ops

    def _named(self, cell: tuple[str, str, str, bool]) -> tuple[str, ...]:
        """A cell's key names worked out, and kept in the app's cache when there is one."""
        names = _cell_keys(*cell)
        return names if self.cell_keys is None else self.cell_keys.put(cell, names)

    def call(self) -> ApplyCall:
        body = {"locks": list(self.locks), "guards": self.guards, "events": self.events}
        return ApplyCall(self.key.keys, json.dumps(body, separators=(",", ":")), self.outbox_ids)


def encode(tenant: str, deltas: Iterable[OutboxDelta], guards: Sequence[tuple[str, str]] = (),
           max_ops: int | None = None, cell_keys: CellKeys | None = None) -> list[ApplyCall]:
    """The calls applying `deltas`, each guarded by `guards`; none when there is no delta.
    `cell_keys`, the app's cache of cells' key names, spares naming them for every event."""
    limit = MAX_OPS_PER_CALL if max_ops is None else max_ops
    calls: list[ApplyCall] = []
    encoder = _Encoder(tenant, guards, cell_keys)
    for delta in deltas:
        if encoder.events and encoder.ops >= limit:
            calls.append(encoder.call())
            encoder = _Encoder(tenant, guards, cell_keys)
        encoder.add(delta)
    if encoder.events:
        calls.append(encoder.call())
    return calls
