"""Bulk seeding for the benchmark: tenants with many tickets and notifications, in minutes.

Rows go straight into tally's SQL tables (executemany in big transactions on SQLite, COPY on
PostgreSQL), bypassing ingest and the outbox: the counters are then built from SQL by the first
reads, exactly as after a Redis flush. Tenants and their system filters come from
tally.services.tenants; the API document's custom filters (the demo's) and one template profile are
added as shared filters, so the 30 ids of the document's example request all resolve.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from tally.core.clock import epoch_ms, utc_now
from tally.core.conditions import parse_definition
from tally.core.model import NOTIFICATION_TYPES
from tally.core.filters import DEMO_FILTERS, FilterSpec
from tally.dev.demo import CATEGORY_FILTERS
from tally.services.tenants import create_tenant, filter_row
from tally.stores.sql.db import Database

Progress = Callable[[str], None]
DAY = 86_400_000
CHUNK = 50_000
TEAMS = tuple(f"team-{n:02d}" for n in range(1, 21))
AGENTS = tuple(f"agent-{n:03d}" for n in range(1, 201))
REQUESTERS = tuple(f"customer-{n:05d}" for n in range(1, 20_001))
CATEGORIES = ("hardware", "software", "network", "access", "billing")
TAGS = ("vip", "urgent", "billing", "bug", "vpn")
STATUS_WEIGHTS = {"open": 25, "in_progress": 15, "pending": 10, "resolved": 25, "closed": 20,
                  "cancelled": 5}
PRIORITY_WEIGHTS = {"critical": 5, "high": 20, "medium": 45, "low": 30}
PROFILE_ID = "5b7e6a4c-0d1e-4f2a-9b3c-4d5e6f708192"
PROFILE = FilterSpec(PROFILE_ID, "Hardware and software desk", "custom", None, parse_definition(
    {"all": [{"field": "category", "op": "in", "value": ["hardware", "software"]}]}))
SHARED_FILTERS: tuple[FilterSpec, ...] = CATEGORY_FILTERS + DEMO_FILTERS + (PROFILE,)
OWNER = "bench-admin"

TICKET_COLUMNS = ("tenant_id", "id", "version", "deleted", "status", "priority", "team_id",
                  "assignee_id", "requester_id", "category", "tags", "is_support_request",
                  "created_at", "due_at", "sla_due_at")
NOTIFICATION_COLUMNS = ("tenant_id", "id", "user_id", "type", "ticket_id", "priority",
                        "created_at", "read", "deleted", "updated_at")


@dataclass(frozen=True)
class SeededTenant:
    tenant_id: str
    tickets: int
    notifications: int
    notification_users: tuple[str, ...]
    seconds: float


def ticket_id(n: int) -> str:
    return f"T-{n:07d}"


def notification_users(count: int) -> tuple[str, ...]:
    """The users holding notifications: every agent first, then requesters."""
    return (AGENTS + REQUESTERS)[:count]


def _weighted(rng: random.Random, weights: dict[str, int], k: int) -> list[str]:
    return rng.choices(list(weights), list(weights.values()), k=k)


def ticket_rows(tenant: str, start: int, count: int, now: int,
                rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """`count` tickets numbered from `start`: realistic spreads of status, priority, teams (20),
    assignees (200 agents, 15% unassigned), requesters (20,000) and timestamps around now."""
    statuses = _weighted(rng, STATUS_WEIGHTS, count)
    priorities = _weighted(rng, PRIORITY_WEIGHTS, count)
    teams = rng.choices(TEAMS + (None,), [5] * len(TEAMS) + [2], k=count)
    assignees = rng.choices(AGENTS + (None,), [1] * len(AGENTS) + [35], k=count)
    for i in range(count):
        tags = [tag for tag in TAGS if rng.random() < 0.12]
        created = now - rng.randrange(180 * DAY)
        due = now + rng.randrange(-5 * DAY, 10 * DAY) if rng.random() < 0.7 else None
        sla = now + rng.randrange(-2 * DAY, 2 * DAY) if rng.random() < 0.6 else None
        yield (tenant, ticket_id(start + i), 1, False, statuses[i], priorities[i], teams[i],
               assignees[i], rng.choice(REQUESTERS), rng.choice(CATEGORIES), json.dumps(tags),
               rng.random() < 0.3, created, due, sla)


def notification_rows(tenant: str, count: int, users: Sequence[str], tickets: int, now: int,
                      rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """`count` notifications spread evenly over `users`: 40% unread, 2% deleted."""
    types = rng.choices(NOTIFICATION_TYPES, k=count)
    priorities = _weighted(rng, PRIORITY_WEIGHTS, count)
    for i in range(count):
        created = now - rng.randrange(30 * DAY)
        yield (tenant, f"N-{i:07d}", users[i % len(users)], types[i],
               ticket_id(rng.randrange(max(tickets, 1))), priorities[i], created,
               rng.random() < 0.6, rng.random() < 0.02, created)


def _sqlite_load(db: Database, table: str, columns: Sequence[str],
                 rows: Iterator[tuple[Any, ...]], progress: Progress, total: int) -> None:
    marks = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        done = 0
        while True:
            chunk = [row for _, row in zip(range(CHUNK), rows)]
            if not chunk:
                break
            cursor.execute("BEGIN")
            cursor.executemany(statement, chunk)
            cursor.execute("COMMIT")
            done += len(chunk)
            progress(f"  {table}: {done:,}/{total:,}")
        cursor.execute("ANALYZE")
    finally:
        raw.close()


def _postgres_load(db: Database, table: str, columns: Sequence[str],
                   rows: Iterator[tuple[Any, ...]], progress: Progress, total: int) -> None:
    raw = db.engine.raw_connection()
    try:
        connection = raw.driver_connection
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for done, row in enumerate(rows, 1):
                    copy.write_row(row)
                    if done % CHUNK == 0:
                        progress(f"  {table}: {done:,}/{total:,}")
        connection.commit()
        connection.autocommit = True
        connection.execute(f"ANALYZE {table}")
        connection.autocommit = False
    finally:
        raw.close()


def load(db: Database, table: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]],
         progress: Progress, total: int) -> None:
    """Bulk-insert `rows` into `table` (SQLite: executemany per CHUNK; PostgreSQL: COPY)."""
    (_sqlite_load if db.is_sqlite else _postgres_load)(db, table, columns, rows, progress, total)


def add_shared_filters(db: Database, tenant: str, now: int) -> None:
    with db.write() as session:
        session.add_all(filter_row(tenant, spec, 1000 + i, now, owner_id=OWNER, shared=True)
                        for i, spec in enumerate(SHARED_FILTERS))


def seed_tenant(db: Database, tenant: str, tickets: int, notifications: int, users: int,
                realm: str, progress: Progress, seed: int = 20250710) -> SeededTenant:
    """Provision `tenant` and bulk-load its tickets and notifications; returns what was made."""
    started = time.monotonic()
    now = epoch_ms(utc_now())
    rng = random.Random(f"{seed}-{tenant}")
    if not create_tenant(db, tenant, f"bench {tickets} tickets", realm):
        raise RuntimeError(f"tenant {tenant} already exists: seed into a fresh database")
    add_shared_filters(db, tenant, now)
    progress(f"tenant {tenant}: {tickets:,} tickets, {notifications:,} notifications")
    load(db, "tickets", TICKET_COLUMNS, ticket_rows(tenant, 0, tickets, now, rng), progress,
         tickets)
    holders = notification_users(users)
    if notifications:
        load(db, "notifications", NOTIFICATION_COLUMNS,
             notification_rows(tenant, notifications, holders, tickets, now, rng), progress,
             notifications)
    seconds = time.monotonic() - started
    progress(f"tenant {tenant} seeded in {seconds:.1f}s")
    return SeededTenant(tenant, tickets, notifications, holders, seconds)
