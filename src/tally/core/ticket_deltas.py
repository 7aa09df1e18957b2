"""Ticket changes as counter ops on every materialised predicate's cells (pure).

The worker runs this for every registered MP on every ticket change, so it skips what cannot make
an op. An update (a row before and after, neither a tombstone) that changes none of the fields an
MP reads (`Materialized.reads`) nor any field choosing the ticket's buckets matches the MP before
exactly when it matches after, in the same buckets: a plain MP's net is zero without evaluating
the predicate at all, and a timed MP is evaluated once, and moves its member only when the
version changed (members are '<id>:<version>', so even a bare version bump moves them).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from tally.core.predicates import Materialized
from tally.core.visibility import ticket_buckets
from tally.stores import keys
from tally.core.cells import CellDeltas, GroupOps, Key, Op

Row = Mapping[str, Any]
# The fields that choose a live ticket's buckets (counting/visibility.py), and `deleted`.
BUCKET_FIELDS = frozenset({"teamId", "assigneeId", "requesterId", "isSupportRequest", "deleted"})


@lru_cache(maxsize=4096)
def _counts_key(tenant: str, mp: str) -> str:
    return keys.mp_counts_key(tenant, mp)


@lru_cache(maxsize=65536)
def _cell_keys(tenant: str, mp: str, bucket: str) -> tuple[str, str, Key]:
    """A timed cell's group, sorted set and negatives hash (key names are checked once)."""
    return (keys.cell_group(mp, bucket), keys.mp_zset_key(tenant, mp, bucket),
            Key(keys.mp_negatives_key(tenant, mp, bucket)))


class CellOps:
    """The cell ops of one or more ticket changes (one outbox row), merged per cell as
    apply_calls merges them: a cell's increments summed, a member's moves netted, and a cell
    kept (even at a net of zero) once a change made an op on it, as the rebuild's snapshot ids
    expect (ticket_rebuild.py asks ticket_change_ops which cells a change touches)."""

    def __init__(self) -> None:
        self.plain: dict[tuple[str, str], int] = {}
        self.timed: dict[tuple[str, str], dict[tuple[str, int], list[int]]] = {}

    def add_plain(self, mp: Materialized, before: list[str] | None,
                  after: list[str] | None) -> None:
        """`before`/`after`: the buckets the ticket leaves / enters (None: it does neither)."""
        net: dict[str, int] = {}
        for bucket in before or ():
            net[bucket] = net.get(bucket, 0) - 1
        for bucket in after or ():
            net[bucket] = net.get(bucket, 0) + 1
        cells = self.plain
        for bucket, n in net.items():
            if n:
                cell = (mp.id, bucket)
                cells[cell] = cells.get(cell, 0) + n

    def add_timed(self, mp: Materialized, before: Row | None, old: list[str],
                  after: Row | None, new: list[str]) -> None:
        moves: dict[str, dict[tuple[str, int], int]] = {}
        for row, buckets, sign in ((before, old, -1), (after, new, 1)):
            member = mp.member(row) if row is not None else None
            if member is None:
                continue
            for bucket in buckets:
                cell = moves.setdefault(bucket, {})
                cell[member] = cell.get(member, 0) + sign
        for bucket, members in moves.items():
            changed = [(member, n) for member, n in members.items() if n]
            if changed:
                cell = self.timed.setdefault((mp.id, bucket), {})
                for member, n in changed:
                    cell.setdefault(member, []).append(n)

    def cells(self) -> CellDeltas:
        """The merged changes: each timed cell's moves netted per member (see _netted)."""
        timed = {}
        for cell, members in self.timed.items():
            moves = []
            for (member, score), signs in members.items():
                if len(signs) == 1:
                    moves.append((member, score, signs[0]))
                else:
                    moves += [(member, score, n) for n in _netted(signs)]
            timed[cell] = moves
        return CellDeltas(self.plain, timed)


def cell_groups(tenant: str, cells: CellDeltas) -> list[GroupOps]:
    """Cell changes as GroupOps: one group per touched cell, as apply_calls encodes them."""
    out = []
    for (mp, bucket), n in cells.plain.items():
        key = _counts_key(tenant, mp)
        out.append(GroupOps(keys.cell_group(mp, bucket), key,
                            [Op("hincrby", key, (bucket, n))] if n else [], bucket))
    for (mp, bucket), moves in cells.timed.items():
        group, zset, negatives = _cell_keys(tenant, mp, bucket)
        ops = [Op("zmove", zset, (negatives, member, score, n)) for member, score, n in moves]
        out.append(GroupOps(group, _counts_key(tenant, mp), ops, warm_field=f"z:{bucket}"))
    return out


def _netted(signs: list[int]) -> list[int]:
    """One member's moves netted as apply_calls nets them: to one move, to none at zero, or kept
    as given when they add up beyond ±1 (a member is added and removed once per version)."""
    if len(signs) == 1:
        return signs
    net = sum(signs)
    if net == 0:
        return []
    return [net] if abs(net) == 1 else signs


def _changed(before: Row | None, after: Row | None) -> frozenset[str] | None:
    """The fields an update of a live ticket changes; None for a creation or a (un)deletion."""
    if before is None or after is None or before.get("deleted") or after.get("deleted"):
        return None
    return frozenset(name for name in before.keys() | after.keys()
                     if before.get(name) != after.get(name))


def add_change(cells: CellOps, mps: Iterable[Materialized], before: Row | None,
               after: Row | None) -> None:
    """Add the cell ops one ticket change makes on each MP it enters, leaves or moves within."""
    changed = _changed(before, after)
    old = ticket_buckets(before) if before is not None else []
    new = old if changed is not None and not changed & BUCKET_FIELDS else (
        ticket_buckets(after) if after is not None else [])
    for mp in mps:
        if changed is not None and new is old and not changed & mp.reads:
            # Same match, same buckets: only a timed MP's member can move (a new version).
            if mp.score_field and "version" in changed and mp.matcher(after):  # type: ignore
                cells.add_timed(mp, before, old, after, new)
            continue
        was = before is not None and mp.matcher(before)
        now = after is not None and mp.matcher(after)
        if not was and not now:
            continue
        if mp.score_field:
            cells.add_timed(mp, before if was else None, old, after if now else None, new)
        else:
            cells.add_plain(mp, old if was else None, new if now else None)


def ticket_change_ops(tenant: str, mps: Iterable[Materialized], before: Row | None,
                      after: Row | None) -> list[GroupOps]:
    """The cell ops one ticket change makes on each MP it enters, leaves or moves within."""
    cells = CellOps()
    add_change(cells, mps, before, after)
    return cell_groups(tenant, cells.cells())


def ticket_rows_cells(tenant: str, mps: Sequence[Materialized],
                      changes: Iterable[Mapping[str, Any]]) -> CellDeltas:
    """The cell changes of several changes (one outbox row), merged per cell (see CellOps)."""
    cells = CellOps()
    for change in changes:
        add_change(cells, mps, change["before"], change["after"])
    return cells.cells()
