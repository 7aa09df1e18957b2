"""What the counting core needs from the counter store, as plain types."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Key(str):
    """An op argument that names a key (sent to Lua as a KEYS index, not as a value)."""


@dataclass(frozen=True)
class Op:
    """One counter change: name is an apply.lua op, key a full key from keys.py."""

    name: str
    key: str
    args: tuple[Any, ...] = ()


@dataclass
class GroupOps:
    """The changes one outbox event makes to one counter group."""

    group: str
    warm_key: str
    ops: list[Op] = field(default_factory=list)
    # When set, the group is warm while hash `warm_key` has this field (one cell of a hash).
    warm_field: str | None = None


@dataclass
class CellDeltas:
    """A ticket row's changes to its tenant's ticket cells, merged per (MP id, bucket) cell.

    `plain`: a cell's net increment, kept at 0 once a change touched the cell (the rebuild's
    snapshot ids expect its group). `timed`: a cell's sorted-set moves (member, score, ±n),
    netted per member. Its GroupOps form is events.ticket_deltas.cell_groups; apply_calls encodes
    it straight into apply.lua's body, since a batch holds hundreds of thousands of cells.
    """

    plain: dict[tuple[str, str], int] = field(default_factory=dict)
    timed: dict[tuple[str, str], list[tuple[str, Any, int]]] = field(default_factory=dict)


@dataclass
class OutboxDelta:
    """One outbox row, turned into per-group counter changes (and, for tickets, cell changes)."""

    outbox_id: int
    groups: list[GroupOps]
    cells: CellDeltas | None = None


@dataclass(frozen=True)
class ApplyResult:
    applied: int
    duplicates: int


@dataclass(frozen=True)
class Install:
    """A group's counters from one SQL snapshot: what to write and which outbox ids it counted."""

    group: str
    writes: list[Op]
    snapshot_ids: list[int]
