"""Maintenance of ticket cells: drop, list, rebuild and compare (MP, bucket) cells, and forget
the MPs nobody reads.

A member is one warm cell, spelled `<mp id>:<bucket>` (MP ids are hex, so the first ':' splits).
Only warm cells are listed: a cold cell has nothing to verify and is recomputed on its next read.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tally.core.clock import epoch_ms
from tally.services.families import Difference
from tally.services.rebuild import rebuild_cells
from tally.core.visibility import ticket_buckets
from tally.stores import keys
from tally.stores.sql import notification_counts as sql_counts
from tally.stores.sql import ticket_counts as sql, ticket_members
from tally.core.cells import Cell, fold
from tally.stores.redis.cells import TimedValue

if TYPE_CHECKING:
    from tally.services.container import Services

NAME = "tickets"
SHOWN_MEMBERS = 3  # differing members named per line


def member_of(cell: Cell) -> str:
    return f"{cell.mp.id}:{cell.bucket}"


def _cell(services: "Services", tenant: str, member: str) -> Cell | None:
    """The cell a member names, or None when its MP is no longer registered."""
    mp_id, _, bucket = member.partition(":")
    mp = services.ticket_counters.mp(tenant, mp_id)
    return None if mp is None else Cell(mp, bucket)


def invalidate(services: "Services", tenant: str, user: str | None,
               filter_id: str | None) -> int:
    """Drop a filter's MPs, or (with neither user nor filter) every ticket key of the tenant.

    The registry version is kept, not deleted: restarting it at 1 could match the guard of an
    apply computed against the old registry. Keeping it is safe (see TicketCounters.drop_mps).
    """
    counters = services.ticket_counters
    if filter_id is not None:
        return counters.drop_mps(tenant, counters.filter_mps(tenant, filter_id), filter_id)
    if user is not None:  # only that user's notification counters were asked for
        return 0
    return counters.drop_mps(tenant, None)


# drop.lua's codes, as the drop job reports them
DROP_OUTCOMES = {0: "dropped", 1: "read", 2: "rebuilding", 3: "gone", 4: "changing"}


@dataclass
class DropReport:
    """What one idle drop of a tenant did: registered MPs seen, and per outcome how many."""

    registered: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def dropped(self) -> int:
        return self.outcomes["dropped"]

    @property
    def line(self) -> str:
        kept = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items())
                         if outcome != "dropped")
        return (f"{self.dropped} of {self.registered} predicates dropped"
                + (f" (kept: {kept})" if kept else ""))


def drop_idle(services: "Services", tenant: str, now_ms: int, idle_ms: int) -> DropReport:
    """Drop every MP of `tenant` not read since `now_ms - idle_ms`, with all its cells.

    Each drop is one atomic script that re-checks the MP's last read and skips it while a cell of
    it is being rebuilt; it unregisters the MP and bumps the registry version, so an apply
    computed with it is refused and recomputed without it, and the next read of it starts cold.
    """
    counters = services.ticket_counters
    cutoff = now_ms - idle_ms
    reads = counters.last_reads(tenant, now_ms)
    report = DropReport(registered=len(reads))
    for mp_id, read in sorted(reads.items()):
        code = 1 if read >= cutoff else counters.drop_mp(tenant, mp_id, cutoff)
        report.outcomes[DROP_OUTCOMES[code]] += 1
    return report


def members(services: "Services", tenant: str) -> list[str]:
    """Every warm cell of every registered MP."""
    return [member_of(cell) for cell in services.ticket_counters.warm_cells(tenant)]


def rebuild(services: "Services", tenant: str, member: str) -> bool:
    """Recompute one cell from SQL; False when another rebuild holds it (or its MP is gone)."""
    cell = _cell(services, tenant, member)
    if cell is None:
        return False
    if services.ticket_counters.rebuilding(tenant, cell):
        return False  # best effort: rebuild_cells leaves a held cell alone and does not say so
    rebuild_cells(services, tenant, [cell], epoch_ms(services.clock()))
    return True


@dataclass
class TrimReport:
    """What one trim pass over a tenant's warm timed cells did."""

    cells: int = 0  # warm timed cells visited
    folded: int = 0  # members folded into floors
    busy: int = 0  # cells skipped because a rebuild held them


def trim(services: "Services", tenant: str, now_ms: int) -> TrimReport:
    """Fold, in every warm timed cell, the members no window of its MP can reach any more.

    One atomic trim.lua call per cell (refused while the cell is rebuilt); the next pass takes
    a skipped cell. Exact at every step: a read whose window reaches below a cell's cutoff finds
    it cold and recomputes (core/cells.py).
    """
    report = TrimReport()
    cells = [c for c in services.ticket_counters.warm_cells(tenant) if c.mp.score_field]
    for folded in services.ticket_counters.trim(tenant, cells, now_ms):
        report.cells += 1
        report.folded += max(folded, 0)
        report.busy += folded == -1
    return report


def _sql_members(session: Any, tenant: str, cell: Cell) -> dict[str, int]:
    """The members a timed cell should hold: live matching tickets in its bucket with a score."""
    found = {}
    for row in ticket_members.matching_tickets(session, tenant, [cell]):
        member = cell.mp.member(row) if cell.mp.matches(row) else None
        if member is not None and cell.bucket in ticket_buckets(row):
            found[member[0]] = member[1]
    return found


def _timed_field(cached: TimedValue, truth: dict[str, int]) -> str | None:
    """How a timed cell differs from SQL, or None when they agree: its members against the live
    ones at or above its cutoff, its floor against the number below it."""
    kept, floor = fold(truth, cached.cutoff)
    differing = sorted(m for m in cached.members.keys() | kept.keys()
                       if cached.members.get(m) != kept.get(m))
    if not differing and not cached.negatives and cached.floor == floor:
        return None
    field = "members"
    if differing:
        shown = ", ".join(differing[:SHOWN_MEMBERS])
        more = len(differing) - SHOWN_MEMBERS
        field += f" (differ: {shown}{f' and {more} more' if more > 0 else ''})"
    if cached.negatives:
        field += f" (pending removals: {len(cached.negatives)})"
    if cached.floor != floor:
        field += f" (floor below {cached.cutoff}: {cached.floor}, SQL {floor})"
    return field


def compare(services: "Services", tenant: str, member: str) -> list[Difference]:
    """The cell's difference from SQL, if any; none when cold or while ticket deltas are in flight.

    The cell's rebuild marker is held while comparing, so no apply changes it between the Redis
    read and the SQL snapshot; ticket outbox rows not yet applied mean Redis may lag, not drift.
    """
    cell = _cell(services, tenant, member)
    if cell is None:
        return []
    token = services.counters.begin_rebuild(tenant, keys.cell_group(*cell.id))
    if token is None:
        return []  # a rebuild is installing this cell right now
    try:
        cached = services.ticket_counters.cell_value(tenant, cell)
        if cached is None:
            return []
        with services.db.snapshot() as session:
            if sql_counts.group_has_pending(session, tenant, keys.TICKETS_GROUP):
                return []
            truth: int | dict[str, int] = (
                _sql_members(session, tenant, cell) if isinstance(cached, TimedValue)
                else sql.cell_counts(session, tenant, [cell], [None])[0])
    finally:
        services.counters.abort_rebuild(tenant, keys.cell_group(*cell.id), token)
    if isinstance(cached, TimedValue) and isinstance(truth, dict):
        field = _timed_field(cached, truth)
        redis_value, sql_value = len(cached.members) + cached.floor, len(truth)
    else:
        field = None if cached == truth else "count"
        redis_value, sql_value = cached, truth
    if field is None:
        return []
    origins = ",".join(services.ticket_counters.origins(tenant, cell.mp.id)) or "?"
    name = f"mp={cell.mp.id} bucket={cell.bucket} filters={origins}"
    return [Difference(NAME, name, field, redis_value, sql_value)]
