"""Outbox payloads into counter deltas (pure), netted here and nowhere else.

Every change carries its before and after rows and takes the one out and puts the other in, so
the deltas of different outbox rows commute: only applying each row exactly once matters.

Ticket changes are evaluated on every registered materialised predicate (MP), so this skips
what cannot make a delta. An update (a row before and after, neither a tombstone) that changes
none of the fields an MP reads (`Materialized.reads`) nor any field choosing the ticket's buckets
matches the MP before exactly when it matches after, in the same buckets: a plain MP's net is zero
without evaluating the predicate at all, and a timed MP is evaluated once, and moves its member
only when the version changed (members are '<id>:<version>', so even a bare version bump moves).
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence

from tally.core.cells import CellDeltas, CellId, NotificationDelta, OutboxDelta
from tally.core.predicates import Materialized
from tally.core.visibility import ticket_buckets

Row = Mapping[str, Any]
# The fields that choose a live ticket's buckets (core/visibility.py), and `deleted`.
BUCKET_FIELDS = frozenset({"teamId", "assigneeId", "requesterId", "isSupportRequest", "deleted"})


def _notification_weights(row: Row | None, sign: int, totals: dict[str, int]) -> None:
    """Add one notification row's contribution (sign +1 or -1) to the counter totals."""
    if row is None or row.get("deleted"):
        return
    totals["total"] = totals.get("total", 0) + sign
    if not row.get("read"):
        for name in ("unread", f"t:{row['type']}", f"p:{row['priority']}"):
            totals[name] = totals.get(name, 0) + sign


def notification_delta(payload: Mapping[str, Any]) -> NotificationDelta:
    """One user's notification changes, netted per counter."""
    changes = payload["changes"]
    users = {row["userId"] for change in changes for row in (change["before"], change["after"])
             if row is not None}
    if len(users) != 1:
        raise ValueError(f"a notification outbox row must name one user, not {sorted(users)}")
    totals: dict[str, int] = {}
    for change in changes:
        _notification_weights(change["before"], -1, totals)
        _notification_weights(change["after"], +1, totals)
    return NotificationDelta(users.pop(), {name: n for name, n in totals.items() if n},
                             int(payload["at"]))


class _Cells:
    """The cell changes of one or more ticket changes, netted per cell: a cell's increments
    summed, a member's moves netted (see _netted), and a cell kept (even at a net of zero) once
    a change made a delta on it (see CellDeltas)."""

    def __init__(self) -> None:
        self.plain: dict[CellId, int] = {}
        self.timed: dict[CellId, dict[tuple[str, int], list[int]]] = {}

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

    def add_change(self, mps: Iterable[Materialized], before: Row | None,
                   after: Row | None) -> None:
        """Add the deltas one ticket change makes on each MP it enters, leaves or moves within."""
        changed = _changed(before, after)
        old = ticket_buckets(before) if before is not None else []
        new = old if changed is not None and not changed & BUCKET_FIELDS else (
            ticket_buckets(after) if after is not None else [])
        for mp in mps:
            if changed is not None and new is old and not changed & mp.reads:
                # Same match, same buckets: only a timed MP's member can move (a new version).
                if mp.score_field and "version" in changed and mp.matcher(after):  # type: ignore
                    self.add_timed(mp, before, old, after, new)
                continue
            was = before is not None and mp.matcher(before)
            now = after is not None and mp.matcher(after)
            if not was and not now:
                continue
            if mp.score_field:
                self.add_timed(mp, before if was else None, old, after if now else None, new)
            else:
                self.add_plain(mp, old if was else None, new if now else None)

    def deltas(self) -> CellDeltas:
        timed = {}
        for cell, members in self.timed.items():
            moves = []
            for (member, score), signs in members.items():
                moves += [(member, score, n) for n in _netted(signs)]
            timed[cell] = moves
        return CellDeltas(self.plain, timed)


def _netted(signs: list[int]) -> list[int]:
    """One member's moves netted: to one move, to none at zero, or kept as given when they add
    up beyond ±1 (a member is added and removed once per version, so that is never expected)."""
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


def ticket_deltas(mps: Sequence[Materialized], changes: Iterable[Mapping[str, Any]]) -> CellDeltas:
    """The cell changes of ticket changes (one outbox row's), netted per cell."""
    cells = _Cells()
    for change in changes:
        cells.add_change(mps, change["before"], change["after"])
    return cells.deltas()


def outbox_delta(outbox_id: int, payload: str | Mapping[str, Any],
                 mps: Sequence[Materialized] = ()) -> OutboxDelta:
    """One outbox row (its JSON payload) as the delta RedisCounters.apply takes.

    `mps` are the tenant's registered ticket predicates (ticket rows only).
    """
    data = json.loads(payload) if isinstance(payload, str) else payload
    if data["kind"] == "ticket":
        return OutboxDelta(outbox_id, cells=ticket_deltas(mps, data["changes"]))
    return OutboxDelta(outbox_id, notification=notification_delta(data))
