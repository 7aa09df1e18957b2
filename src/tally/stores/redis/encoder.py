"""Outbox deltas as apply.lua calls: compact, merged per event and group, bounded in size.

One outbox row holds up to 200 changes, and each ticket change makes ops on many cells, so a batch
encoded op by op is large. Before encoding, the ops one event makes on one counter group are
merged (increments summed, sorted-set moves of one member netted), which apply.lua applies
exactly as it would the separate ops: the group's warm and snapshot checks are made once per
event and group either way. A batch is then cut into calls of at most MAX_OPS_PER_CALL ops,
never inside an event, because a script holds Redis for its whole run (reads wait meanwhile);
each call is atomic and dedupes its events on its own, so calls need not run together.
The body is flat arrays with numeric op codes (apply.lua's header has the layout): a batch holds
tens of thousands of groups, and an object per group and op cost more to build, encode and
decode than the ops cost to apply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Sequence

from tally.stores import keys
from tally.core.cells import CellDeltas, GroupOps, Key, Op, OutboxDelta

MAX_OPS_PER_CALL = 5000
# apply.lua's op codes (see its header for the body's layout).
HINCRBY, INCRBY, HMAX, ZMOVE = 1, 2, 3, 4
OP_CODES = {"hincrby": HINCRBY, "incrby": INCRBY, "hmax": HMAX, "zmove": ZMOVE}


@dataclass
class ApplyCall:
    """One apply.lua call: its KEYS, its JSON body, and the outbox ids it carries."""

    keys: list[str]
    body: str
    outbox_ids: list[int] = field(default_factory=list)


@lru_cache(maxsize=65536)
def _cell_key_names(tenant: str, mp: str, bucket: str, timed: bool) -> tuple[str, ...]:
    """A ticket cell's group, rebuild marker, snapshot set and counts hash; for a timed cell
    also its sorted set and negatives hash (the keys events.ticket_deltas.cell_groups names)."""
    group = keys.cell_group(mp, bucket)
    names = (group, keys.group_lock_key(tenant, group), keys.group_snapshot_key(tenant, group),
             keys.mp_counts_key(tenant, mp))
    if timed:
        names += (keys.mp_zset_key(tenant, mp, bucket), keys.mp_negatives_key(tenant, mp, bucket))
    return names


class _Encoder:
    """Builds one call: every key once in KEYS, referred to by its 1-based index."""

    def __init__(self, tenant: str, guards: Sequence[tuple[str, str]],
                 group_keys: dict[str, tuple[str, str]]):
        self.tenant = tenant
        self.keys = [keys.applied_key(tenant)]
        self.index = {self.keys[0]: 1}
        self.guards = [[self.key(name), value] for name, value in guards]
        self.group_keys = group_keys  # group -> (lock key, snapshot key), shared across calls
        self.locks: dict[str, int] = {}
        self.heads: dict[tuple[str, str], list[Any]] = {}  # (group, warm key) -> its head
        self.events: list[list[Any]] = []
        self.outbox_ids: list[int] = []
        self.ops = 0

    def key(self, name: str) -> int:
        found = self.index.get(name)
        if found is None:
            self.keys.append(name)
            found = self.index[name] = len(self.keys)
        return found

    def op(self, op: Op) -> list[Any]:
        """apply.lua's form of an op: its code, then keys (the op's, and Key arguments) as KEYS
        indices and the other arguments."""
        name, args = op.name, op.args
        if name == "hincrby" and not isinstance(args[0], Key):  # the most frequent op
            return [HINCRBY, self.key(op.key), args[0], args[1]]
        if name == "zmove":
            negatives, member, score, n = args
            return [ZMOVE, self.key(op.key), self.key(negatives), member, score, n]
        code = OP_CODES.get(name)
        if code is None:
            raise ValueError(f"apply.lua has no op {name!r}")
        return [code, self.key(op.key), *(self.key(a) if isinstance(a, Key) else a for a in args)]

    def merged(self, ops: Iterable[Op]) -> list[list[Any]]:
        """The ops of one event on one group, merged and encoded: increments of one field summed
        (dropped when 0), hmax kept at its maximum, and the moves of one member netted to one
        (a member is added and removed once per version) unless they add up beyond ±1, which
        are kept as given. Every op commutes with the others, so order is not kept."""
        sums: dict[tuple[Any, ...], Any] = {}
        moves: dict[tuple[str, str], list[Op]] = {}
        other: list[Op] = []
        for op in ops:
            name = op.name
            if name == "zmove":
                moves.setdefault((op.key, op.args[1]), []).append(op)
            elif name == "hincrby" or name == "hmax":
                slot = (name, op.key, op.args[0])
                seen, value = sums.get(slot), op.args[1]
                if seen is not None:
                    value = seen + value if name == "hincrby" else max(seen, value)
                sums[slot] = value
            elif name == "incrby":
                slot = (name, op.key)
                sums[slot] = sums.get(slot, 0) + op.args[0]
            else:
                other.append(op)
        out = [[OP_CODES[slot[0]], self.key(slot[1]), *slot[2:], value]
               for slot, value in sums.items() if value or slot[0] == "hmax"]
        for same in moves.values():
            if len(same) > 1:
                net = sum(op.args[3] for op in same)
                if net == 0:
                    continue
                one = next((op for op in same if op.args[3] == net), None)
                if one is not None and abs(net) == 1:
                    same = [one]
            out += [self.op(op) for op in same]
        return out + [self.op(op) for op in other]

    def _head(self, entry: GroupOps) -> list[Any]:
        """The group's warm key index and field and snapshot key index, found once per call."""
        group = entry.group
        head = self.heads.get((group, entry.warm_key))
        if head is None:
            found = self.group_keys.get(group)
            if found is None:
                found = self.group_keys[group] = (keys.group_lock_key(self.tenant, group),
                                                  keys.group_snapshot_key(self.tenant, group))
            if group not in self.locks:
                self.locks[group] = self.key(found[0])
            field = entry.warm_field if entry.warm_field is not None else False
            head = [self.key(entry.warm_key), field, self.key(found[1])]
            self.heads[(group, entry.warm_key)] = head
        return head

    def add(self, delta: OutboxDelta) -> None:
        by_group: dict[str, list[GroupOps]] = {}
        for g in delta.groups:
            by_group.setdefault(g.group, []).append(g)
        event: list[Any] = [str(delta.outbox_id)]
        key = self.key
        for entries in by_group.values():
            group = list(self._head(entries[0]))
            if len(entries) == 1:
                for op in entries[0].ops:
                    args = op.args
                    if op.name == "hincrby" and not isinstance(args[0], Key):  # most frequent
                        group += (HINCRBY, key(op.key), args[0], args[1])
                    else:
                        group += self.op(op)
                    self.ops += 1
            else:
                for encoded in self.merged(op for entry in entries for op in entry.ops):
                    group += encoded
                    self.ops += 1
            event.append(group)
        if delta.cells is not None:
            self._add_cells(event, delta.cells)
        self.events.append(event)
        self.outbox_ids.append(delta.outbox_id)

    def _add_cells(self, event: list[Any], cells: CellDeltas) -> None:
        """Ticket cells, encoded as their GroupOps form (cell_groups) would be, without building
        it: a row's cells are nearly all distinct, so this is the batch's inner loop."""
        tenant, index, names, locks = self.tenant, self.index, self.keys, self.locks

        def key(name: str) -> int:
            found = index.get(name)
            if found is None:
                names.append(name)
                found = index[name] = len(names)
            return found

        ops = 0
        for (mp, bucket), n in cells.plain.items():
            group, lock, snapshot, counts = _cell_key_names(tenant, mp, bucket, False)
            if group not in locks:
                locks[group] = key(lock)
            counts_index = key(counts)
            if n:
                event.append([counts_index, bucket, key(snapshot), HINCRBY, counts_index, bucket,
                              n])
                ops += 1
            else:
                event.append([counts_index, bucket, key(snapshot)])
        for (mp, bucket), moves in cells.timed.items():
            group, lock, snapshot, counts, zset, negatives = _cell_key_names(tenant, mp, bucket,
                                                                             True)
            if group not in locks:
                locks[group] = key(lock)
            entry = [key(counts), f"z:{bucket}", key(snapshot)]
            if moves:  # all of them may have netted away
                zset_index, negatives_index = key(zset), key(negatives)
                for member, score, n in moves:
                    entry += (ZMOVE, zset_index, negatives_index, member, score, n)
                ops += len(moves)
            event.append(entry)
        self.ops += ops

    def call(self) -> ApplyCall:
        body = {"locks": list(self.locks.values()), "guards": self.guards, "events": self.events}
        return ApplyCall(self.keys, json.dumps(body, separators=(",", ":")), self.outbox_ids)


def encode(tenant: str, deltas: Iterable[OutboxDelta], guards: Sequence[tuple[str, str]] = (),
           max_ops: int | None = None) -> list[ApplyCall]:
    """The calls applying `deltas`, each guarded by `guards`; none when there is no delta."""
    limit = MAX_OPS_PER_CALL if max_ops is None else max_ops
    group_keys: dict[str, tuple[str, str]] = {}
    calls: list[ApplyCall] = []
    encoder = _Encoder(tenant, guards, group_keys)
    for delta in deltas:
        if encoder.events and encoder.ops >= limit:
            calls.append(encoder.call())
            encoder = _Encoder(tenant, guards, group_keys)
        encoder.add(delta)
    if encoder.events:
        calls.append(encoder.call())
    return calls
