"""The chaos suite's last word: fresh counts over HTTP against a recount of the SQL rows in Python.

Notification counts are recounted from the rows; ticket counts come from the plain-Python oracle
(s/support/oracle.py) over every ticket row, at the `computedAt` the answer reports, so time
windows are compared at the very millisecond the service used.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tally.core.clock import epoch_ms, parse_iso
from tests.support import oracle
from tally.core.conditions import parse_definition
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, Principal
from tally.http.schemas.common import iso_or_none
from tally.stores.sql.db import Database
from tally.stores.sql.models import Notification, Ticket
from tally.stores.sql.ticket_members import TICKET_FIELDS
from tests.support.traffic import CALLERS, PROFILE, USERS, ZONES, Api, Caller, Tenant


@dataclass
class Comparison:
    """Answers compared, answers by X-Count-Source, and every mismatch found."""

    checked: int = 0
    sources: collections.Counter = field(default_factory=collections.Counter)
    mismatches: list[str] = field(default_factory=list)


def notification_truth(db: Database, tenant: str, user: str) -> dict[str, Any]:
    """A user's badge as the API would render it, counted row by row from SQL."""
    with db.snapshot() as session:
        n = Notification
        rows = session.execute(select(n.type, n.priority, n.read, n.deleted, n.updated_at).where(
            n.tenant_id == tenant, n.user_id == user)).all()
    live = [r for r in rows if not r.deleted]
    unread = [r for r in live if not r.read]
    return {"total": len(live), "unread": len(unread),
            "byType": {t: sum(r.type == t for r in unread) for t in NOTIFICATION_TYPES},
            "byPriority": {p: sum(r.priority == p for r in unread) for p in PRIORITIES},
            "lastUpdated": iso_or_none(max((r.updated_at for r in rows), default=None))}


def ticket_rows(db: Database, tenant: str) -> list[dict[str, Any]]:
    """Every ticket row (tombstones too) in the oracle's camelCase shape."""
    names = list(TICKET_FIELDS)
    with db.snapshot() as session:
        rows = session.execute(select(*TICKET_FIELDS.values(), Ticket.deleted)
                               .where(Ticket.tenant_id == tenant)).all()
    return [{**dict(zip(names, row[:-1])), "deleted": bool(row[-1])} for row in rows]


def _principal(tenant: str, caller: Caller) -> Principal:
    return Principal(caller.user, tenant, "realm", frozenset(caller.roles), caller.teams)


def compare(api: Api, db: Database, tenant: Tenant) -> Comparison:
    """Every user's badge and every caller's ticket counts (each view, with and without the
    profile) read fresh over HTTP, compared with the recount."""
    out = Comparison()
    for user in USERS:
        response = api.call("GET", "/ticket/notification/count", tenant.id,
                            Caller(user, ("ticket_user",), (), ()))
        out.checked += 1
        out.sources[response.headers.get("X-Count-Source")] += 1
        data, truth = response.json().get("data"), notification_truth(db, tenant.id, user)
        if data != truth:
            out.mismatches.append(f"{tenant.id} notifications {user}: {data} != sql {truth}")
    tickets = ticket_rows(db, tenant.id)
    definitions = {fid: parse_definition(conditions) for fid, conditions in tenant.filters.items()}
    profile = parse_definition(PROFILE)
    combos = [(c, v, p) for c in CALLERS for v in c.views for p in (False, True)]
    for number, (caller, view, with_profile) in enumerate(combos):
        zone = ZONES[number % len(ZONES)]
        response = api.ticket_count(tenant, caller, view, list(definitions), zone, with_profile)
        out.checked += 1
        out.sources[response.headers.get("X-Count-Source")] += 1
        data = response.json().get("data") or {}
        now = epoch_ms(parse_iso(data.get("computedAt", "1970-01-01T00:00:00Z")))
        counts, summary = oracle.count(tickets, _principal(tenant.id, caller), view, definitions,
                                       profile if with_profile else None, now, zone, False)
        if (data.get("counts"), data.get("summary")) != (counts, summary):
            where = f"{tenant.id} tickets {caller.user}/{view}/{zone}/profile={with_profile}"
            out.mismatches.append(f"{where}: {data} != oracle {counts} {summary}")
    return out
