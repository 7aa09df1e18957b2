"""Counter deltas as plain data: what one outbox row changes, named by user and (MP id, bucket).

The Redis side (tally.stores.redis.encoder) maps these names to keys; nothing here names a key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tally.core.predicates import Materialized

CellId = tuple[str, str]  # (materialised predicate id, bucket)

# Trimming a timed cell folds its members scored below a cutoff into one count, the floor. A
# window [lo, hi) is then answerable from the cell when lo >= cutoff (members only), or when
# lo is -inf and hi >= cutoff (floor + members below hi); any other window treats it as cold.
# The cutoff of a cell nothing was folded in: below any score (an exact double, as Lua has).
UNTRIMMED = -(2 ** 53)
# Room between the cutoff and the lowest bound a window reaches: readers' and the trimmer's
# clocks may differ by this much before a read goes cold (never wrong) for it.
TRIM_MARGIN_MS = 3_600_000


def trim_cutoff(now_ms: int, reach_ms: int | None) -> int:
    """The cutoff a timed cell may be trimmed to now, given its MP's recorded reach (None: no
    reach recorded, nothing may be folded)."""
    if reach_ms is None:
        return UNTRIMMED
    return now_ms - reach_ms - TRIM_MARGIN_MS


def fold(members: dict[str, int], cutoff: int) -> tuple[dict[str, int], int]:
    """A timed cell's members split at `cutoff`: those kept (score >= cutoff) and the floor."""
    kept = {member: score for member, score in members.items() if score >= cutoff}
    return kept, len(members) - len(kept)


@dataclass(frozen=True)
class Cell:
    """One (MP, bucket) counter: a plain MP's count, or a timed MP's members."""

    mp: Materialized
    bucket: str

    @property
    def id(self) -> CellId:
        return (self.mp.id, self.bucket)


@dataclass
class CellDeltas:
    """A ticket row's changes to its tenant's ticket cells, netted per (MP id, bucket) cell.

    `plain`: a cell's net increment, kept at 0 once a change touched the cell. `timed`: a
    cell's sorted-set moves (member, score, ±n), netted per member, kept (maybe empty) once a
    change moved a member in it. A touched cell stays listed so the apply asks its snapshot set
    about the row exactly when the rebuild recorded the row there (services/rebuild.py).
    """

    plain: dict[CellId, int] = field(default_factory=dict)
    timed: dict[CellId, list[tuple[str, Any, int]]] = field(default_factory=dict)

    def touched(self) -> set[CellId]:
        """Every cell the changes touched, netted to nothing or not."""
        return self.plain.keys() | self.timed.keys()


@dataclass
class NotificationDelta:
    """One user's notification changes: counter name -> net change (zero nets left out), and
    the row's time, which lastUpdated keeps as a running maximum. Counter names are those of
    the user's counts: total, unread, t:<type>, p:<priority>."""

    user: str
    counts: dict[str, int]
    at: int


@dataclass
class OutboxDelta:
    """One outbox row as counter changes: a notification row's or a ticket row's."""

    outbox_id: int
    notification: NotificationDelta | None = None
    cells: CellDeltas | None = None
