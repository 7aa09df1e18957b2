"""The demo tenant (`tally demo`, `make run`): the API document's filter ids and plausible data."""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import func, select

from tally.dev import keys as devkeys
from tally.core.clock import epoch_ms, from_epoch_ms, iso_ms
from tally.core.conditions import parse_definition
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, STATUSES
from tally.core.filters import DEMO_FILTERS, FilterSpec
from tally.services.ingest import ingest
from tally.services.outbox import apply_pending
from tally.http.schemas.events import load_events
from tally.progress import Progress
from tally.services.tenants import create_tenant, filter_row
from tally.stores.sql.models import Filter, OutboxRow, Ticket

DEMO_TENANT = "5e1f4a2c-8b3d-4c6e-9f70-1a2b3c4d5e6f"
DEMO_AGENT, DEMO_USER, DEMO_ADMIN = "demo-agent", "demo-user", "demo-admin"
DEMO_SERVICE = "demo-ticket-service"  # the ticket service's token: posts events, counts nothing
DEMO_TEAMS = ("team-blue", "team-green", "team-red")
TICKETS, CHUNK = 1500, 250
HOUR = 3_600_000

# The rest of the API document's example request: tenant-specific sidebar filters of the demo.
CATEGORY_FILTERS = tuple(FilterSpec(fid, name, "custom", None, parse_definition(obj)) for
                         fid, name, obj in (
    ("4373", "Urgent", {"all": [{"field": "tags", "op": "contains", "value": "urgent"}]}),
    ("7476", "Hardware", {"all": [{"field": "category", "op": "eq", "value": "hardware"}]}),
    ("7477", "Software", {"all": [{"field": "category", "op": "eq", "value": "software"}]}),
    ("7478", "Network", {"all": [{"field": "category", "op": "eq", "value": "network"}]}),
    ("7479", "Access", {"all": [{"field": "category", "op": "eq", "value": "access"}]}),
    ("7480", "Billing", {"all": [{"field": "category", "op": "eq", "value": "billing"}]}),
    ("7531", "Support Requests", {"all": [{"field": "isSupportRequest", "op": "eq",
                                           "value": True}]}),
    ("7693", "Created This Week", {"all": [{"field": "createdAt", "op": "within_last",
                                            "value": "7d"}]}),
))


@dataclass(frozen=True)
class Demo:
    tenant_id: str
    tickets: int


def _ticket_event(rng: random.Random, n: int, now: int) -> dict[str, Any]:
    def stamp(lo_h: int, hi_h: int) -> str:
        return iso_ms(from_epoch_ms(now + rng.randint(lo_h * HOUR, hi_h * HOUR)))

    people = [DEMO_AGENT, "agent-2", "agent-3", "agent-4", None]
    data = {"id": f"TCK-{n:05d}", "version": 1, "status": rng.choice(STATUSES),
            "priority": rng.choice(PRIORITIES), "teamId": rng.choice(DEMO_TEAMS + ("team-ops",)),
            "assigneeId": rng.choice(people),
            "requesterId": DEMO_USER if rng.random() < 0.05 else f"customer-{rng.randint(1, 400)}",
            "category": rng.choice(("hardware", "software", "network", "access", "billing")),
            "tags": rng.sample(("vip", "urgent", "billing", "bug", "vpn"), rng.randint(0, 2)),
            "isSupportRequest": rng.random() < 0.3, "createdAt": stamp(-24 * 30, 0),
            "dueAt": stamp(-48, 72) if rng.random() < 0.7 else None,
            "slaDueAt": stamp(-12, 24) if rng.random() < 0.6 else None}
    return {"eventId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo-ticket-{n}")),
            "type": "ticket.upserted", "occurredAt": iso_ms(from_epoch_ms(now)), "data": data}


def _notification_event(rng: random.Random, n: int, user: str, now: int) -> dict[str, Any]:
    data = {"id": f"NTF-{user}-{n}", "userId": user, "type": rng.choice(NOTIFICATION_TYPES),
            "ticketId": f"TCK-{rng.randint(0, TICKETS - 1):05d}",
            "priority": rng.choice(PRIORITIES),
            "createdAt": iso_ms(from_epoch_ms(now - rng.randint(0, 72 * HOUR)))}
    return {"eventId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo-notification-{user}-{n}")),
            "type": "notification.created", "occurredAt": data["createdAt"], "data": data}


def _add_filters(services: Any, now: int) -> None:
    with services.db.write() as session:
        existing = set(session.scalars(select(Filter.id).where(Filter.tenant_id == DEMO_TENANT)))
        session.add_all(filter_row(DEMO_TENANT, spec, 1000 + i, now, owner_id=DEMO_ADMIN,
                                   shared=True)
                        for i, spec in enumerate(CATEGORY_FILTERS + DEMO_FILTERS)
                        if spec.id not in existing)


def provision_demo(services: Any, progress: Callable[[str], None] = print,
                   tickets: int = TICKETS) -> Demo:
    """Create the demo tenant, its filters and data; safe to run again (it adds nothing twice).

    `progress` gets report lines; a tally.progress.Progress on a terminal also draws bars.
    `tickets` makes a smaller demo for tests (the notifications stay the same).
    """
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    now = epoch_ms(services.clock())
    created = create_tenant(services.db, DEMO_TENANT, "Demo Inc.", devkeys.DEV_REALM)
    progress(f"demo tenant {DEMO_TENANT} {'created' if created else 'already there'}")
    _add_filters(services, now)
    with services.db.snapshot() as session:
        have = session.scalar(select(func.count()).select_from(Ticket)
                              .where(Ticket.tenant_id == DEMO_TENANT)) or 0
    if have == 0:
        rng = random.Random(20250710)
        events = [_ticket_event(rng, n, now) for n in range(tickets)]
        events += [_notification_event(rng, n, DEMO_AGENT, now) for n in range(24)]
        events += [_notification_event(rng, n, DEMO_USER, now) for n in range(8)]
        reads = [e["data"]["id"] for e in events[tickets:tickets + 12]]
        events.append({"eventId": str(uuid.uuid5(uuid.NAMESPACE_URL, "demo-read")),
                       "type": "notification.read", "occurredAt": iso_ms(from_epoch_ms(now)),
                       "data": {"userId": DEMO_AGENT, "ids": reads}})
        _ingest(services, progress, events, now)
        _apply(services, progress)
        have = tickets
    return Demo(DEMO_TENANT, have)


def _ingest(services: Any, progress: Progress, events: list[dict[str, Any]], now: int) -> None:
    """Ingest the demo events a chunk at a time: a bar on a terminal, else a line per chunk."""
    with progress.counting(len(events), "demo data") as advance:
        for start in range(0, len(events), CHUNK):
            chunk = events[start:start + CHUNK]
            ingest(services.db, DEMO_TENANT, load_events({"events": chunk}), now)
            advance(len(chunk))
            if not progress.live:
                progress(f"demo data: {start + len(chunk)}/{len(events)} events")
    if progress.live:
        progress(f"demo data: {len(events)} events")


def _apply(services: Any, progress: Progress) -> None:
    """Apply the demo's outbox to the counters now (no worker needed), a chunk at a time."""
    with services.db.snapshot() as session:
        pending = session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.tenant_id == DEMO_TENANT, OutboxRow.applied_at.is_(None))) or 0
    applied = 0
    with progress.counting(pending, "demo counters") as advance:
        while True:
            report = apply_pending(services, DEMO_TENANT, limit=CHUNK)
            if report.rows == 0:
                break
            applied += report.rows
            advance(report.rows)
    progress(f"demo counters: {applied} outbox rows applied")


def demo_token(services: Any, user: str = DEMO_AGENT, roles: tuple[str, ...] = ("ticket_agent",),
               teams: tuple[str, ...] = DEMO_TEAMS, ttl: int = 12 * 3600) -> str:
    """A token for a demo user (12 hours unless `ttl` says), signed with the local dev key."""
    return devkeys.dev_token(services.config.VAR_DIR, tenant=DEMO_TENANT, user=user,
                             roles=list(roles), teams=list(teams), ttl=ttl)
