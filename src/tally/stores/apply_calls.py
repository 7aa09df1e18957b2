"""Outbox deltas as apply.lua calls: compact, merged per event and group, bounded in size.

One outbox row holds up to 200 changes, and each ticket change makes ops on many cells, so a batch
encoded op by op is large. Before encoding, the ops one event makes on one counter group are
merged (increments summed, sorted-set moves of one member netted), which apply.lua applies
exactly as it would the separate ops: the group's warm and snapshot checks are made once per
event and group either way. A batch is then cut into calls of at most MAX_OPS_PER_CALL ops,
never inside an event, because a script holds Redis for its whole run (reads wait meanwhile);
each call is atomic and dedupes its events on its own, so calls need not run together.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tally.stores import keys
from tally.stores.base import GroupOps, Key, Op, OutboxDelta

MAX_OPS_PER_CALL = 5000


@dataclass
class ApplyCall:
    """One apply.lua call: its KEYS, its JSON body, and the outbox ids it carries."""

    keys: list[str]
    body: str
    outbox_ids: list[int] = field(default_factory=list)


def _merge(ops: list[Op]) -> list[Op]:
    """The ops of one event on one group, merged, in first-seen order. Moves of one member net
    to one move (a member is added and removed once per version), unless they add up beyond
    ±1, which is kept op by op as given; ops of other names are kept as given."""
    sums: dict[tuple[Any, ...], Any] = {}
    moves: dict[tuple[str, str, str], list[Op]] = {}
    other: list[Op] = []
    for op in ops:
        name = op.name
        if name == "hincrby" or name == "hmax":
            slot: tuple[Any, ...] = (name, op.key, op.args[0])
            seen, value = sums.get(slot), op.args[1]
            if seen is not None:
                value = seen + value if name == "hincrby" else max(seen, value)
            sums[slot] = value
        elif name == "incrby":
            slot = (name, op.key)
            sums[slot] = sums.get(slot, 0) + op.args[0]
        elif name == "zmove":
            moves.setdefault((op.key, op.args[0], op.args[1]), []).append(op)
        else:
            other.append(op)
    out = [Op(slot[0], slot[1], (*slot[2:], value)) for slot, value in sums.items()
           if value or slot[0] == "hmax"]
    for same_member in moves.values():
        net = sum(op.args[3] for op in same_member)
        one = next((op for op in reversed(same_member) if op.args[3] == net), None)
        if net == 0 and len(same_member) > 1:
            continue
        out += [one] if abs(net) == 1 and one is not None else same_member
    return out + other


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
        self.events: list[dict[str, Any]] = []
        self.outbox_ids: list[int] = []
        self.ops = 0

    def key(self, name: str) -> int:
        found = self.index.get(name)
        if found is None:
            self.keys.append(name)
            found = self.index[name] = len(self.keys)
        return found

    def op(self, op: Op) -> list[Any]:
        if op.name == "zmove":
            negatives, member, score, n = op.args
            return ["zmove", self.key(op.key), self.key(negatives), member, score, n]
        return [op.name, self.key(op.key),
                *(self.key(a) if isinstance(a, Key) else a for a in op.args)]

    def add(self, delta: OutboxDelta) -> None:
        by_group: dict[str, list[GroupOps]] = {}
        for g in delta.groups:
            by_group.setdefault(g.group, []).append(g)
        groups = []
        for group, entries in by_group.items():
            found = self.group_keys.get(group)
            if found is None:
                found = self.group_keys[group] = (keys.group_lock_key(self.tenant, group),
                                                  keys.group_snapshot_key(self.tenant, group))
            if group not in self.locks:
                self.locks[group] = self.key(found[0])
            ops = entries[0].ops if len(entries) == 1 else _merge(
                [op for entry in entries for op in entry.ops])
            encoded = [self.op(op) for op in ops]
            self.ops += len(encoded)
            groups.append({"warm": self.key(entries[0].warm_key),
                           "field": entries[0].warm_field, "snap": self.key(found[1]),
                           "ops": encoded})
        self.events.append({"id": str(delta.outbox_id), "groups": groups})
        self.outbox_ids.append(delta.outbox_id)

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
