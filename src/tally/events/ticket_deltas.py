"""Ticket changes as counter ops on every materialised predicate's cells (pure)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from tally.counting.predicates import Materialized
from tally.counting.visibility import ticket_buckets
from tally.stores import keys
from tally.stores.base import GroupOps, Key, Op

Row = Mapping[str, Any]


def _plain_ops(tenant: str, mp: Materialized, before: Row | None,
               after: Row | None) -> list[GroupOps]:
    net: dict[str, int] = {}
    if before is not None:
        for bucket in ticket_buckets(before):
            net[bucket] = net.get(bucket, 0) - 1
    if after is not None:
        for bucket in ticket_buckets(after):
            net[bucket] = net.get(bucket, 0) + 1
    key = keys.mp_counts_key(tenant, mp.id)
    return [GroupOps(keys.cell_group(mp.id, bucket), key, [Op("hincrby", key, (bucket, n))],
                     warm_field=bucket)
            for bucket, n in net.items() if n]


def _timed_ops(tenant: str, mp: Materialized, before: Row | None,
               after: Row | None) -> list[GroupOps]:
    moves: dict[str, dict[tuple[str, int], int]] = {}
    for row, sign in ((before, -1), (after, 1)):
        member = mp.member(row) if row is not None else None
        if member is None:
            continue
        for bucket in ticket_buckets(row):
            cell = moves.setdefault(bucket, {})
            cell[member] = cell.get(member, 0) + sign
    counts_key = keys.mp_counts_key(tenant, mp.id)
    groups = []
    for bucket, members in moves.items():
        zset = keys.mp_zset_key(tenant, mp.id, bucket)
        negatives = Key(keys.mp_negatives_key(tenant, mp.id, bucket))
        ops = [Op("zmove", zset, (negatives, member, score, n))
               for (member, score), n in sorted(members.items(), key=lambda kv: kv[1]) if n]
        if ops:
            groups.append(GroupOps(keys.cell_group(mp.id, bucket), counts_key, ops,
                                   warm_field=f"z:{bucket}"))
    return groups


def ticket_change_ops(tenant: str, mps: Iterable[Materialized], before: Row | None,
                      after: Row | None) -> list[GroupOps]:
    """The cell ops one ticket change makes on each MP it enters, leaves or moves within."""
    groups: list[GroupOps] = []
    for mp in mps:
        was = before if before is not None and mp.matches(before) else None
        now = after if after is not None and mp.matches(after) else None
        if was is None and now is None:
            continue
        builder = _timed_ops if mp.score_field else _plain_ops
        groups.extend(builder(tenant, mp, was, now))
    return groups
