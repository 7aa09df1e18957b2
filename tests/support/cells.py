"""Shared by the cold-path SQL tests: ticket rows from random data, the cells of a filter list
over some buckets, and the oracle's answer to whether a ticket counts in a cell."""
from __future__ import annotations

from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.core.filters import SYSTEM_BY_ID
from tally.core.visibility import ticket_buckets
from tally.stores.sql.db import Database
from tally.stores.sql.models import Ticket
from tally.core.cells import Cell
from tests.support.randomdata import random_tickets

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TZ = "Asia/Calcutta"
FILTERS = ("all", "3745", "4195", "7471", "7473", "7472", "5932", "6358", "7440", "7474", "7475")


def ticket_row(tenant: str, t: dict) -> Ticket:
    """The SQL row of one random ticket (tests.support.randomdata) in `tenant`."""
    return Ticket(tenant_id=tenant, id=t["id"], version=t["version"], deleted=t["deleted"],
                  status=t["status"], priority=t["priority"], team_id=t["teamId"],
                  assignee_id=t["assigneeId"], requester_id=t["requesterId"],
                  category=t["category"], tags=t["tags"], is_support_request=t["isSupportRequest"],
                  created_at=t["createdAt"], due_at=t["dueAt"], sla_due_at=t["slaDueAt"])


def cells_of(me: Principal, buckets: tuple[str, ...]) -> tuple[list[Cell], list]:
    """Every (system filter of FILTERS, bucket) cell as `me` sees it, with its window at NOW."""
    cells, windows = [], []
    for fid in FILTERS:
        definition = SYSTEM_BY_ID[fid].definition
        mp = Materialized.of(definition, me)
        span = definition.time_condition.window(NOW, TZ) if definition.time_condition else None
        for bucket in buckets:
            cells.append(Cell(mp, bucket))
            windows.append(span)
    return cells, windows


def in_cell(ticket: dict, cell: Cell, span) -> bool:  # noqa: ANN001
    """The oracle: a live ticket of the cell's bucket matching its predicate, within `span`."""
    if ticket["deleted"] or not cell.mp.matches(ticket):
        return False
    if cell.bucket not in ticket_buckets(ticket):
        return False
    if span is None:
        return True
    score = ticket.get(cell.mp.score_field)
    return score is not None and span[0] <= score < span[1]


def seeded_tickets(db_url: str, tenant: str, seed: int, n: int = 400):  # noqa: ANN201
    """A fixture body: `n` random tickets of `tenant` written to `db_url`; yields (db, rows)."""
    rows = random_tickets(seed=seed, n=n, now_ms=NOW)
    db = Database(db_url)
    with db.write() as session:
        session.add_all(ticket_row(tenant, t) for t in rows)
    yield db, rows
    db.engine.dispose()


def oracle_checked_counts(db: Database, tenant: str, rows: list[dict], cells: list[Cell],
                          windows: list) -> list[int]:
    """cell_counts over `cells` in one snapshot, asserted equal to the oracle's counts of
    `rows`; returns them."""
    from tally.stores.sql import ticket_counts as sql_ticket_counts

    with db.snapshot() as session:
        counts = sql_ticket_counts.cell_counts(session, tenant, cells, windows)
    assert counts == [sum(in_cell(t, cell, span) for t in rows)
                      for cell, span in zip(cells, windows)]
    return counts
