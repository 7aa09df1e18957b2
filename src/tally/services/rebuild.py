"""Rebuild ticket cells from one SQL snapshot without losing or doubling a concurrent delta.

1. `begin` registers the cells' MPs (bumping the registry version, so an apply computed without
   them is refused and recomputed), records them as read (so the idle drop leaves them alone) and
   sets each cell's rebuild marker (applies touching it wait).
2. One snapshot: the counts, the members of timed cells, and the outbox rows a worker may still
   apply; those whose deltas touch a cell are recorded in its snapshot set (applies skip them).
3. One install per cell clears its marker. A cell whose marker is held elsewhere stays cold.
   A timed cell is installed trimmed to the cutoff its MP's recorded reach allows now.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from tally.core.cells import Cell, CellId, fold, trim_cutoff
from tally.core.deltas import ticket_deltas
from tally.core.visibility import ticket_buckets
from tally.stores import keys
from tally.stores.redis.counters import Install, Write
from tally.stores.sql import ticket_counts as sql, ticket_members, watermarks

log = logging.getLogger("tally.counting.rebuild")
ZADD_CHUNK = 1000  # pairs per ZADD, under Lua's unpack limit


def _timed_writes(tenant: str, cell: Cell, members: dict[str, int], cutoff: int) -> list[Write]:
    """Install a timed cell already trimmed to `cutoff`: members below it as its floor."""
    zset = keys.mp_zset_key(tenant, cell.mp.id, cell.bucket)
    writes = [Write("del", zset),
              Write("del", keys.mp_negatives_key(tenant, cell.mp.id, cell.bucket))]
    kept, floor = fold(members, cutoff)
    pairs = [x for member, score in sorted(kept.items()) for x in (score, member)]
    for start in range(0, len(pairs), 2 * ZADD_CHUNK):
        writes.append(Write("zadd", zset, tuple(pairs[start:start + 2 * ZADD_CHUNK])))
    cutoff_field, floor_field = keys.timed_fields(cell.bucket)
    writes.append(Write("hset", keys.mp_counts_key(tenant, cell.mp.id),
                        (cutoff_field, cutoff, floor_field, floor)))
    return writes


def _snapshot_ids(outbox: list[tuple[int, dict[str, Any]]],
                  cells: Sequence[Cell]) -> dict[CellId, list[int]]:
    """Per held cell, the outbox rows whose deltas touch it (the deltas the worker applies)."""
    snaps: dict[CellId, list[int]] = {cell.id: [] for cell in cells}
    buckets_of: dict[str, set[str]] = {}
    mps = {}
    for cell in cells:
        buckets_of.setdefault(cell.mp.id, set()).add(cell.bucket)
        mps[cell.mp.id] = cell.mp
    for outbox_id, payload in outbox:
        changes = payload.get("changes", ())
        touched = {b for change in changes for row in (change.get("before"), change.get("after"))
                   if row for b in ticket_buckets(row)}
        # Only MPs with a held cell in a bucket the row touches can get deltas for it.
        candidates = [mp for mp_id, mp in mps.items() if buckets_of[mp_id] & touched]
        if not candidates:
            continue
        for cell in ticket_deltas(candidates, changes).touched():
            ids = snaps.get(cell)
            if ids is not None:
                ids.append(outbox_id)
    return snaps


def rebuild_cells(services: Any, tenant: str, cells: Sequence[Cell], now_ms: int,
                  answer_cells: Sequence[Cell] = (),
                  answer_windows: Sequence[tuple[float, float] | None] = ()
                  ) -> tuple[list[int], int]:
    """Rebuild `cells`; returns the counts of `answer_cells` from the same snapshot, and the
    tenant's watermark in it (every write up to it is in those counts)."""
    counters = services.ticket_counters
    token, held, reaches = counters.begin(tenant, cells, now_ms)
    try:
        plain = [c for c in held if c.mp.score_field is None]
        timed = [c for c in held if c.mp.score_field is not None]
        horizon = now_ms - 2 * services.config.JOB_TIMEOUT * 1000
        with services.db.snapshot() as session:
            values = sql.cell_counts(session, tenant, list(answer_cells) + plain,
                                     list(answer_windows) + [None] * len(plain))
            members = ticket_members.timed_members(session, tenant, timed)
            outbox = ticket_members.recent_outbox(session, tenant, keys.TICKETS_GROUP, horizon)
            watermark = watermarks.issued(session, tenant)
        answer, plain_values = values[:len(answer_cells)], values[len(answer_cells):]
        # Rows Redis has applied are deduped if a worker brings them again: no need to record them.
        applied = services.counters.applied_among(tenant, [row_id for row_id, _ in outbox])
        snaps = _snapshot_ids([row for row in outbox if row[0] not in applied], held)
        plans = [Install(keys.cell_group(*c.id), [Write("hset", keys.mp_counts_key(
                     tenant, c.mp.id), (c.bucket, n))], snaps[c.id])
                 for c, n in zip(plain, plain_values)]
        # Trimmed as the trim job would now: the reach begin recorded covers every window
        # read from the MP so far, this request's too.
        plans += [Install(keys.cell_group(*c.id), _timed_writes(
                      tenant, c, members[c.id], trim_cutoff(now_ms, reaches[c.mp.id])),
                      snaps[c.id]) for c in timed]
        for plan, installed in zip(plans, services.counters.install_many(tenant, token, plans)):
            if not installed:
                log.warning("rebuild of %s lost its marker; the cell stays cold", plan.group)
    except BaseException:
        for cell in held:
            try:
                services.counters.abort_rebuild(tenant, keys.cell_group(*cell.id), token)
            except Exception:  # the marker expires by itself; never mask the first error
                log.warning("could not clear the rebuild marker of %s", cell.id)
        raise
    return answer, watermark
