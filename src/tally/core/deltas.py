"""Outbox payloads into counter ops (pure): each change takes its before row out, its after in.

Because every change carries both rows, the ops of different outbox rows commute: only applying
each row exactly once matters, never the order.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from tally.core.predicates import Materialized
from tally.core.ticket_deltas import ticket_rows_cells
from tally.stores import keys
from tally.core.cells import CellDeltas, GroupOps, Op, OutboxDelta

Row = dict[str, Any]


def _notification_weights(row: Row | None, sign: int, totals: dict[str, int]) -> None:
    """Add one notification row's contribution (sign +1 or -1) to the hash field totals."""
    if row is None or row.get("deleted"):
        return
    totals["total"] = totals.get("total", 0) + sign
    if not row.get("read"):
        for name in ("unread", f"t:{row['type']}", f"p:{row['priority']}"):
            totals[name] = totals.get(name, 0) + sign


def notification_ops(tenant: str, payload: dict[str, Any]) -> list[GroupOps]:
    """One user's changes as HINCRBYs on their counts hash, then lastUpdated as a running max."""
    changes = payload["changes"]
    users = {row["userId"] for change in changes for row in (change["before"], change["after"])
             if row is not None}
    if len(users) != 1:
        raise ValueError(f"a notification outbox row must name one user, not {sorted(users)}")
    user = users.pop()
    totals: dict[str, int] = {}
    for change in changes:
        _notification_weights(change["before"], -1, totals)
        _notification_weights(change["after"], +1, totals)
    key = keys.notification_counts_key(tenant, user)
    ops = [Op("hincrby", key, (name, n)) for name, n in totals.items() if n]
    ops.append(Op("hmax", key, ("lu", int(payload["at"]))))
    return [GroupOps(keys.notification_group(user), key, ops)]


def ticket_ops(tenant: str, payload: dict[str, Any],
               mps: Sequence[Materialized]) -> CellDeltas:
    """Ticket changes as cell changes on every registered materialised predicate, merged per
    cell (events.ticket_deltas.cell_groups gives them as GroupOps)."""
    return ticket_rows_cells(tenant, mps, payload["changes"])


def outbox_delta(tenant: str, outbox_id: int, payload: str | dict[str, Any],
                 mps: Sequence[Materialized] = ()) -> OutboxDelta:
    """One outbox row (its JSON payload) as the per-group ops RedisCounters.apply takes.

    `mps` are the tenant's registered ticket predicates (ticket rows only).
    """
    data = json.loads(payload) if isinstance(payload, str) else payload
    if data["kind"] == "ticket":
        return OutboxDelta(outbox_id, [], ticket_ops(tenant, data, mps))
    return OutboxDelta(outbox_id, notification_ops(tenant, data))
