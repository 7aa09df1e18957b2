"""`python -m bench.soak` (what `make soak` runs): many simulated days of one tenant's traffic
through real worker processes, on SQLite and PostgreSQL, and whether its state stays flat.

An injected clock (TALLY_CLOCK_FILE, tally.dev.clock) drives the run: the driver writes the
simulated time, and the web app (in this process) and the two worker processes (`python -m
tally.workers.run tally-apply` and `... tally-maintenance`, started as bench/stack.py starts
them; one per queue, so their CPU tells applying events from scheduled maintenance) take "now"
from it. Each simulated tick (an hour by default) the driver

1. moves the clock and enqueues every job of the scheduler's table (tally/workers/schedule.py
   `table(config)`, through its own `tick`) whose slot the clock entered, so a periodic job
   registered there later is soaked without a change here;
2. posts that hour's change events (`POST /events`, as the ticket service): tickets created,
   updated, reassigned, closed, now and then deleted, with due and SLA dates that pass as the
   clock moves; notifications created, read and deleted;
3. reads as a few agents (ticket counts with rotating system filters plus the custom filters they
   keep, `$me`/`$myTeams` ones included, and the notification badge), an admin and a requester,
   so predicates get materialised, read, and then abandoned when a filter is dropped or its
   agent leaves;
4. waits until the workers have applied every outbox row and finished every job.

Agents and requesters come and go (a share is replaced each day), and agents create custom
filters that live a few days. After each simulated day it prints one row: live tickets, Redis
bytes per live ticket (`tally cache stats`' memory), registered predicates (`mpreg`), rows in
`seen_events` and in the outbox, the events posted, the apply worker's CPU per event (its /proc
CPU time over the day ÷ the day's events), the maintenance worker's CPU that day, and drift
(`tally cache verify` over every warm group every --full-verify-every days and on the last, the
sampling verify's check of --verify-sample random groups on the others, plus what the workers'
own sampling verify recorded that day).
It ends with a verdict per figure: growth over the last half of the run (a least-squares line
through those days, with two standard errors of margin), against the 5 % target — flat, GROWS,
or unsure when the margin straddles the target — and drift 0 throughout.

Reads go through the app's own front door in this process (Flask's test client), not over HTTP:
the soak measures state and the worker's cost, not the web tier, and a gunicorn beside the worker
would take CPU from the two cores the workers' CPU figures are measured on.

Progress goes to stderr (a line per day, and where the driver's time went), the Markdown
tables to stdout (and to --output).
"""
from __future__ import annotations

import argparse
import heapq
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from rq import Queue
from sqlalchemy import func, select

from bench import calls
from bench.proc import cpu_seconds
from bench.stack import ROOT, Stack
from tally.app import create_app
from tally.core.clock import from_epoch_ms, iso_ms
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES
from tally.dev import keys as devkeys
from tally.dev.clock import set_time
from tally.jobs import APPLY_QUEUE, MAINTENANCE_QUEUE, QUEUES
from tally.services import maintenance, outbox, stats
from tally.services.tenants import create_tenant
from tally.settings import from_env
from tally.stores import keys
from tally.stores.sql.models import OutboxRow, SeenEvent, Ticket
from tests.support.postgres import PostgresCluster
from tally.workers import schedule

API = "/api/v2/ticketing"
TENANT = "00000000-0000-4000-8000-00000000500a"
DAY_S = 86_400
HOUR_MS = 3_600_000
DAY_MS = DAY_S * 1000
START = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()  # a Monday; fixed so a seed replays
OPEN = ("open", "in_progress", "pending")
CLOSED = ("resolved", "closed", "cancelled")
CATEGORIES = ("it", "billing", "hr", "facilities", "sales")
TAGS = ("vip", "billing", "bug", "vpn", "outage", "onboarding")
ZONES = ("UTC", "Asia/Calcutta", "America/New_York", "Europe/Berlin")
# System filters every agent's sidebar asks for, and the rest, a few of which rotate in per read.
SIDEBAR = ("all", "7471", "7472", "7473", "5932", "6358", "7440", "7474", "7475")
OTHERS = ("3745", "3747", "3749", "3746", "3748", "3750", "4195", "4196", "4197", "4362")
BATCH = 500  # events per POST /events
TARGET = 0.05  # growth over the last half of the run that still counts as flat
SETTLE_TIMEOUT_S = float(os.environ.get("SOAK_SETTLE_TIMEOUT_S", 300))


def progress(line: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    add("--days", type=int, default=20, help="simulated days")
    add("--tickets-per-day", type=int, default=200, help="tickets created per simulated day")
    add("--ticks-per-day", type=int, default=12, help="clock steps per simulated day")
    add("--agents", type=int, default=40, help="agents active at any time")
    add("--teams", type=int, default=6)
    add("--requesters", type=int, default=200, help="requesters active at any time")
    add("--churn", type=float, default=0.05,
        help="share of agents and of requesters replaced each simulated day")
    add("--filters-per-day", type=int, default=4, help="custom filters agents create per day")
    add("--filter-days", type=int, default=6, help="longest a custom filter is read (days)")
    add("--readers-per-tick", type=int, default=6, help="agents reading counts per tick")
    add("--open-days", type=float, default=3.0, help="mean days a ticket stays open")
    add("--notification-days", type=int, default=14, help="days before a notification is deleted")
    add("--full-verify-every", type=int, default=5,
        help="days between full verifies (also the last day); the others verify a sample")
    add("--verify-sample", type=int, default=200, help="warm groups a sampling day compares")
    add("--seed", type=int, default=7)
    add("--output", help="also write the tables to this Markdown file")
    add("--workdir", help="keep databases, the clock file and the workers' logs here")
    args = parser.parse_args(argv)
    if args.days < 2 or args.ticks_per_day < 1 or args.tickets_per_day < 1:
        parser.error("--days must be at least 2, --ticks-per-day and --tickets-per-day at least 1")
    return args


# -- the simulated tenant -----------------------------------------------------------------------
@dataclass
class CustomFilter:
    id: str
    owner: str
    team: str
    shared: bool
    until_day: int  # read up to and including this day, then abandoned


@dataclass
class World:
    """The tenant's people, tickets, notifications and filters, moved by one seeded generator.

    It only builds events and chooses readers; the driver sends them.
    """

    args: argparse.Namespace
    rng: random.Random
    teams: list[str] = field(default_factory=list)
    agents: dict[str, list[str]] = field(default_factory=dict)  # active agent -> teams
    requesters: list[str] = field(default_factory=list)
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)  # live tickets' last data
    closing: list[tuple[int, str]] = field(default_factory=list)  # heap of (close at ms, ticket)
    unread: dict[str, list[str]] = field(default_factory=dict)  # user -> unread notification ids
    notes: list[tuple[int, str]] = field(default_factory=list)  # (created ms, id), oldest first
    filters: list[CustomFilter] = field(default_factory=list)
    serial: int = 0
    carry: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.teams = [f"team-{n}" for n in range(self.args.teams)]
        for _ in range(self.args.agents):
            self._hire()
        self.requesters = [self._name("req") for _ in range(self.args.requesters)]

    def _name(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    def _hire(self) -> None:
        self.agents[self._name("agent")] = self.rng.sample(self.teams, self.rng.choice((1, 1, 2)))

    def _share(self, what: str, per_tick: float) -> int:
        """How many `what` this tick: the rate's whole part plus its carried fractions."""
        total = self.carry.get(what, 0.0) + per_tick
        whole = int(total)
        self.carry[what] = total - whole
        return whole

    # people come and go, filters are created and abandoned
    def new_day(self, day: int) -> list[str]:
        """Replace a share of agents and requesters; returns the agents who left."""
        leaving = self.rng.sample(sorted(self.agents), round(len(self.agents) * self.args.churn))
        for agent in leaving:
            del self.agents[agent]
            self._hire()
        gone = round(len(self.requesters) * self.args.churn)
        self.requesters = self.requesters[gone:] + [self._name("req") for _ in range(gone)]
        return leaving

    def filter_body(self, owner: str) -> tuple[dict[str, Any], bool]:
        """A custom filter an agent might save (half of the kinds resolve per caller)."""
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            conditions = {"all": [{"field": "assigneeId", "op": "eq", "value": "$me"},
                                  {"field": "priority", "op": "in",
                                   "value": sorted(rng.sample(PRIORITIES, 2))}]}
        elif kind == 1:
            conditions = {"all": [{"field": "teamId", "op": "in", "value": "$myTeams"},
                                  {"field": "slaDueAt", "op": "within_next",
                                   "value": f"{rng.choice((2, 4, 8))}h"}]}
        elif kind == 2:
            conditions = {"all": [{"field": "tags", "op": "contains", "value": rng.choice(TAGS)},
                                  {"field": "createdAt", "op": "within_last",
                                   "value": f"{rng.choice((3, 7, 14))}d"}]}
        elif kind == 3:
            conditions = {"all": [{"field": "category", "op": "eq",
                                   "value": rng.choice(CATEGORIES)},
                                  {"field": "status", "op": "in", "value": list(OPEN)},
                                  {"field": "dueAt", "op": "before_now"}]}
        elif kind == 4:
            conditions = {"any": [{"field": "tags", "op": "contains", "value": rng.choice(TAGS)},
                                  {"field": "priority", "op": "eq",
                                   "value": rng.choice(PRIORITIES)}]}
        else:
            conditions = {"all": [{"field": "assigneeId", "op": "is_null"},
                                  {"field": "category", "op": "ne",
                                   "value": rng.choice(CATEGORIES)},
                                  {"field": "createdAt", "op": "older_than",
                                   "value": f"{rng.choice((12, 24, 48))}h"}]}
        shared = rng.random() < 0.3
        return {"name": f"soak {self.serial}", "shared": shared, "conditions": conditions}, shared

    def abandoned(self, day: int) -> list[CustomFilter]:
        """Filters nobody reads any more (their day passed, or their owner left); forgotten here."""
        gone = [f for f in self.filters if f.until_day < day or f.owner not in self.agents]
        self.filters = [f for f in self.filters if f not in gone]
        return gone

    def readers(self) -> list[tuple[str, list[str], list[str]]]:
        """(agent, teams, filter ids) of this tick's readers; the sidebar plus a rotating few."""
        chosen = self.rng.sample(sorted(self.agents),
                                 min(self.args.readers_per_tick, len(self.agents)))
        out = []
        for agent in chosen:
            teams = self.agents[agent]
            own = [f.id for f in self.filters if f.owner == agent]
            shared = [f.id for f in self.filters
                      if f.shared and f.owner != agent and f.team in teams]
            ids = [*SIDEBAR, *self.rng.sample(OTHERS, 3), *own, *shared[:3]]
            out.append((agent, teams, ids))
        return out

    # events
    def _event(self, type_: str, at_ms: int, data: dict[str, Any]) -> dict[str, Any]:
        return {"eventId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "type": type_, "occurredAt": iso_ms(from_epoch_ms(at_ms)), "data": data}

    def _upsert(self, ticket: dict[str, Any], at_ms: int) -> dict[str, Any]:
        ticket["version"] += 1
        return self._event("ticket.upserted", at_ms, dict(ticket))

    def _notify(self, user: str | None, ticket: str, at_ms: int) -> list[dict[str, Any]]:
        if user is None:
            return []
        nid = self._name("n")
        self.unread.setdefault(user, []).append(nid)
        self.notes.append((at_ms, nid))
        return [self._event("notification.created", at_ms, {
            "id": nid, "userId": user, "type": self.rng.choice(NOTIFICATION_TYPES),
            "ticketId": ticket, "priority": self.rng.choice(PRIORITIES),
            "createdAt": iso_ms(from_epoch_ms(at_ms))})]

    def _assignee(self, team: str) -> str | None:
        if self.rng.random() < 0.25:
            return None
        members = [a for a, teams in self.agents.items() if team in teams]
        return self.rng.choice(members or sorted(self.agents))

    def tick_events(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The events of the simulated interval [start, end): creations, updates, closes,
        deletions, notifications created, read (by this tick's readers, later) and deleted."""
        rng, per_tick = self.rng, self.args.tickets_per_day / self.args.ticks_per_day
        events: list[dict[str, Any]] = []

        def at() -> int:
            return rng.randrange(start_ms, end_ms)

        for _ in range(self._share("create", per_tick)):
            now = at()
            team = rng.choice(self.teams)
            tid = self._name("T")
            ticket = {"id": tid, "version": 0, "status": "open",
                      "priority": rng.choices(PRIORITIES, (1, 3, 5, 3))[0], "teamId": team,
                      "assigneeId": self._assignee(team),
                      "requesterId": rng.choice(self.requesters),
                      "category": rng.choice(CATEGORIES),
                      "tags": rng.sample(TAGS, rng.randrange(3)),
                      "isSupportRequest": rng.random() < 0.2,
                      "createdAt": iso_ms(from_epoch_ms(now)),
                      "dueAt": (iso_ms(from_epoch_ms(now + rng.randrange(4 * HOUR_MS, 7 * DAY_MS)))
                                if rng.random() < 0.7 else None),
                      "slaDueAt": (iso_ms(from_epoch_ms(now + rng.choice((4, 8, 24, 72)) * HOUR_MS))
                                   if rng.random() < 0.6 else None)}
            self.tickets[tid] = ticket
            close_at = now + int(rng.expovariate(1 / self.args.open_days) * DAY_MS)
            heapq.heappush(self.closing, (close_at, tid))
            events.append(self._upsert(ticket, now))
            events += self._notify(ticket["assigneeId"], tid, now)

        open_ids = [tid for tid, t in self.tickets.items() if t["status"] in OPEN]
        for _ in range(min(len(open_ids), self._share("update", per_tick))):
            now, ticket = at(), self.tickets[rng.choice(open_ids)]
            change = rng.randrange(4)
            if ticket["assigneeId"] not in self.agents or change == 0:  # its agent left: reassign
                ticket["assigneeId"] = self._assignee(ticket["teamId"])
            elif change == 1:
                ticket["status"] = rng.choice(OPEN)
            elif change == 2:
                ticket["priority"] = rng.choice(PRIORITIES)
            else:  # the due date moves out
                ticket["dueAt"] = iso_ms(from_epoch_ms(now + rng.randrange(HOUR_MS, 5 * DAY_MS)))
            events.append(self._upsert(ticket, now))
            events += self._notify(ticket["assigneeId"], ticket["id"], now)

        while self.closing and self.closing[0][0] < end_ms:
            close_at, tid = heapq.heappop(self.closing)
            now, ticket = max(start_ms, close_at), self.tickets[tid]
            if rng.random() < 0.02:  # spam, a duplicate: deleted outright
                del self.tickets[tid]
                ticket["version"] += 1
                events.append(self._event("ticket.deleted", now,
                                          {"id": tid, "version": ticket["version"]}))
                continue
            ticket["status"] = rng.choices(CLOSED, (6, 3, 1))[0]
            events.append(self._upsert(ticket, now))
            events += self._notify(ticket["requesterId"], tid, now)

        horizon = end_ms - self.args.notification_days * DAY_MS
        while self.notes and self.notes[0][0] < horizon:
            _created, nid = self.notes.pop(0)
            events.append(self._event("notification.deleted", at(), {"id": nid}))
        return events

    def read_events(self, user: str, at_ms: int) -> list[dict[str, Any]]:
        """The user opened their notifications: everything unread is now read."""
        ids = self.unread.pop(user, [])
        return [self._event("notification.read", at_ms, {"userId": user, "ids": ids[i:i + 200]})
                for i in range(0, len(ids), 200)]


# -- one database's run -------------------------------------------------------------------------
@dataclass
class DayRow:
    day: int
    live_tickets: int
    redis_bytes: int
    predicates: int
    seen_events: int
    outbox_rows: int
    events: int
    apply_cpu_s: float  # the apply worker's CPU that day
    maintenance_cpu_s: float  # the maintenance worker's CPU that day (scheduled jobs)
    drift: int
    verified: str  # "full" (every warm group) or "sample" (--verify-sample random groups)

    @property
    def bytes_per_ticket(self) -> float:
        return self.redis_bytes / max(1, self.live_tickets)

    @property
    def cpu_us_per_event(self) -> float:
        return self.apply_cpu_s * 1e6 / max(1, self.events)

    @property
    def maintenance_ms(self) -> float:
        return self.maintenance_cpu_s * 1e3

    @property
    def maintenance_ms_per_kticket(self) -> float:
        """The maintenance worker's CPU that day per 1,000 live tickets: what it walks (timed
        cells, sampled groups recounted in SQL) grows with what is live, and in a tenant that
        closes tickets but never deletes them what is live grows every day."""
        return self.maintenance_ms * 1000 / max(1, self.live_tickets)


class Driver:
    """One database's stack: the app in this process on the injected clock, the real workers."""

    def __init__(self, stack: Stack, clock_file: str, workers: Sequence[subprocess.Popen],
                 env: dict[str, str]):
        self.stack, self.clock_file, self.workers = stack, clock_file, workers
        self.app = create_app(from_env(env))
        logging.getLogger("tally").setLevel(logging.WARNING)  # the tables, not the app's lines
        self.svc = self.app.extensions["tally"]
        self.client = self.app.test_client()
        self.var_dir = str(stack.var_dir)
        self.headers: dict[str, dict[str, str]] = {}
        self.jobs_enqueued: dict[str, int] = {}
        self.failed = 0  # jobs the workers failed, counted before the stack stops
        self.spent: dict[str, float] = {}  # wall seconds of the driver per phase (progress)
        self.verify_sample = 200
        self.table = schedule.table(self.svc.config)
        self.queues = [Queue(name, connection=self.svc.queue_redis) for name in QUEUES]

    def _as(self, user: str, roles: Sequence[str], teams: Sequence[str] = ()) -> dict[str, str]:
        key = f"{user}|{','.join(roles)}|{','.join(teams)}"
        if key not in self.headers:
            self.headers[key] = {**calls.headers(self.var_dir, TENANT, user, roles, teams),
                                 "content-type": "application/json"}
        return self.headers[key]

    def _timed(self, phase: str, began: float) -> None:
        self.spent[phase] = self.spent.get(phase, 0.0) + time.monotonic() - began

    def _call(self, method: str, path: str, headers: dict[str, str], body: Any = None,
              status: int = 200) -> dict[str, Any]:
        began = time.monotonic()
        try:
            return self._request(method, path, headers, body, status)
        finally:
            self._timed("posts" if path.endswith("/events") else "reads", began)

    def _request(self, method: str, path: str, headers: dict[str, str], body: Any,
                 status: int) -> dict[str, Any]:
        response = self.client.open(path, method=method, headers=headers,
                                    data=None if body is None else json.dumps(body))
        if response.status_code != status:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.get_data()!r}")
        return response.get_json() if response.data else {}

    def set_clock(self, epoch_s: float) -> None:
        set_time(self.clock_file, epoch_s)

    def run_schedule(self, now_s: float) -> None:
        """Enqueue every job of the scheduler's table whose slot the clock entered."""
        config = self.svc.config
        enqueued = schedule.tick(self.svc.queue_redis, now_s, int(config.SCHEDULE_INTERVAL),
                                 int(config.JOB_TIMEOUT), self.table)
        for job_id in enqueued:
            name = job_id.rsplit("-", 1)[0]
            self.jobs_enqueued[name] = self.jobs_enqueued.get(name, 0) + 1

    def post(self, events: list[dict[str, Any]]) -> int:
        accepted = 0
        for i in range(0, len(events), BATCH):
            body = self._call("POST", f"{API}/events",
                              self._as("ticket-service", ["ticket_service"]),
                              {"events": events[i:i + BATCH]}, status=202)
            accepted += int(body["data"]["accepted"])
        return accepted

    def create_filter(self, owner: str, teams: list[str], body: dict[str, Any]) -> str:
        created = self._call("POST", f"{API}/filters", self._as(owner, ["ticket_agent"], teams),
                             body, status=201)
        return str(created["data"]["id"])

    def delete_filter(self, owner: str, teams: list[str], filter_id: str) -> None:
        self._call("DELETE", f"{API}/filters/{filter_id}", self._as(owner, ["ticket_agent"], teams))

    def read(self, agent: str, teams: list[str], ids: list[str], zone: str) -> None:
        headers = self._as(agent, ["ticket_agent"], teams)
        self._call("POST", f"{API}/ticket/count?type=agent&module=ticketing", headers,
                   {"filterIds": ids, "timezone": zone})
        self._call("GET", f"{API}/ticket/notification/count", headers)

    def read_as_admin(self, zone: str) -> None:
        self._call("POST", f"{API}/ticket/count?type=template&module=ticketing",
                   self._as("admin-1", ["ticket_admin"]),
                   {"filterIds": [*SIDEBAR, *OTHERS], "timezone": zone})

    def read_as_requester(self, user: str, zone: str) -> None:
        headers = self._as(user, ["ticket_user"])
        self._call("POST", f"{API}/ticket/count?type=user&module=ticketing", headers,
                   {"filterIds": ["all", "3745", "3746", "5932"], "timezone": zone})
        self._call("GET", f"{API}/ticket/notification/count", headers)

    def settle(self, now_ms: int) -> None:
        """Wait until every outbox row is applied and every queue, started and scheduled job
        registry is empty, twice in a row (a job moves from queue to started in two steps)."""
        began = time.monotonic()
        deadline, quiet = began + SETTLE_TIMEOUT_S, 0
        while quiet < 2:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise RuntimeError(f"a worker exited with {worker.returncode} "
                                       f"(see {self.stack.workdir}/logs/worker-*.log)")
            busy = {"pending outbox rows": outbox.backlog(self.svc.db, now_ms)[0]}
            for queue in self.queues:
                busy.update({f"{queue.name} queued": queue.count,
                             f"{queue.name} started": queue.started_job_registry.count,
                             f"{queue.name} scheduled": queue.scheduled_job_registry.count})
            waiting = {name: count for name, count in busy.items() if count}
            if time.monotonic() > deadline:
                raise TimeoutError(f"the workers did not settle within {SETTLE_TIMEOUT_S:.0f}s: "
                                   f"{waiting} (see {self.stack.workdir}/logs/worker-*.log)")
            quiet = 0 if waiting else quiet + 1
            time.sleep(0.01 if waiting else 0.02)
        self._timed("settle", began)

    def failed_jobs(self) -> int:
        return sum(queue.failed_job_registry.count for queue in self.queues)

    def sampled_drift(self) -> int:
        return int(self.svc.queue_redis.get(keys.DRIFT_FOUND_KEY) or 0)

    def measure(self, day: int, events: int, cpu_s: Sequence[float], sampled: int,
                full: bool) -> DayRow:
        svc = self.svc
        with svc.db.snapshot() as session:
            live = session.scalar(select(func.count()).select_from(Ticket).where(
                Ticket.tenant_id == TENANT, Ticket.deleted.is_(False)))
            seen = session.scalar(select(func.count()).select_from(SeenEvent)
                                  .where(SeenEvent.tenant_id == TENANT))
            rows = session.scalar(select(func.count()).select_from(OutboxRow)
                                  .where(OutboxRow.tenant_id == TENANT))
        began = time.monotonic()
        found = stats.tenant_stats(svc, TENANT)
        self._timed("stats", began)
        began = time.monotonic()
        if full:  # `tally cache verify`: every warm group of the tenant against SQL
            drifted = len(maintenance.verify(svc, TENANT).differences)
        else:  # the sampling verify's check, on more groups; a full verify costs seconds/day
            drifted = len(maintenance.sample_verify(
                svc, self.verify_sample, random.Random(day)).drifted)
        self._timed("verify", began)
        return DayRow(day, int(live), found.memory_bytes, found.predicates, int(seen), int(rows),
                      events, *cpu_s, drifted + sampled, "full" if full else "sample")


def soak(kind: str, args: argparse.Namespace, workdir: Path,
         on_day: Callable[[DayRow], None]) -> tuple[list[DayRow], Driver]:
    """Run the simulated days on one database; returns the day rows and the driver."""
    rng = random.Random(args.seed)
    world = World(args, rng)
    with Stack(kind, workdir) as stack:
        clock_file = str(workdir / "clock")
        set_time(clock_file, START)
        # development, not production: the injected clock is refused in production.
        overrides = dict(TALLY_ENV="development", TALLY_CLOCK_FILE=clock_file,
                         TALLY_BENCH_BASELINE="false", TALLY_LOG_SAMPLE_RATE="0",
                         TALLY_LOG_SLOW_MS="600000")
        # Two workers, one per queue, so the day's CPU splits into applying events and the
        # scheduled maintenance jobs (sweep, verify, prune, trim, drop), each with its own figure.
        with stack.worker(APPLY_QUEUE, **overrides) as applier, \
                stack.worker(MAINTENANCE_QUEUE, **overrides) as maintainer:
            workers = (applier, maintainer)
            driver = Driver(stack, clock_file, workers, stack.env(**overrides))
            driver.verify_sample = args.verify_sample
            create_tenant(driver.svc.db, TENANT, "soak", devkeys.DEV_REALM)
            rows: list[DayRow] = []
            tick_ms = DAY_MS // args.ticks_per_day
            for day in range(1, args.days + 1):
                if day > 1:
                    world.new_day(day)
                for abandoned in world.abandoned(day):
                    if abandoned.owner in world.agents and rng.random() < 0.5:
                        driver.delete_filter(abandoned.owner, world.agents[abandoned.owner],
                                             abandoned.id)
                cpu_before = [cpu_seconds(worker.pid) for worker in workers]
                sampled_before, events = driver.sampled_drift(), 0
                day_ms = int(START * 1000) + (day - 1) * DAY_MS
                for tick in range(args.ticks_per_day):
                    start_ms = day_ms + tick * tick_ms
                    end_ms = start_ms + tick_ms
                    driver.set_clock(end_ms / 1000)
                    driver.run_schedule(end_ms / 1000)
                    if tick == args.ticks_per_day // 3:  # office hours: new filters
                        for _ in range(args.filters_per_day):
                            owner = rng.choice(sorted(world.agents))
                            body, shared = world.filter_body(owner)
                            teams = world.agents[owner]
                            world.filters.append(CustomFilter(
                                driver.create_filter(owner, teams, body), owner, teams[0], shared,
                                day + rng.randrange(args.filter_days)))
                    events += driver.post(world.tick_events(start_ms, end_ms))
                    driver.settle(end_ms)
                    for agent, teams, ids in world.readers():
                        driver.read(agent, teams, ids, rng.choice(ZONES))
                        events += driver.post(world.read_events(agent, end_ms - 1))
                    driver.read_as_admin(rng.choice(ZONES))
                    requester = rng.choice(world.requesters)
                    driver.read_as_requester(requester, rng.choice(ZONES))
                    events += driver.post(world.read_events(requester, end_ms - 1))
                    driver.settle(end_ms)
                cpu = [cpu_seconds(w.pid) - before for w, before in zip(workers, cpu_before)]
                full = day % args.full_verify_every == 0 or day == args.days
                row = driver.measure(day, events, cpu, driver.sampled_drift() - sampled_before,
                                     full)
                rows.append(row)
                on_day(row)
            driver.failed = driver.failed_jobs()
            if driver.failed:
                progress(f"{kind}: {driver.failed} failed job(s): "
                         f"see {workdir}/logs/worker-*.log")
    return rows, driver


# -- the tables ---------------------------------------------------------------------------------
FIGURES: tuple[tuple[str, Callable[[DayRow], float], str], ...] = (
    ("Redis bytes per live ticket", lambda r: r.bytes_per_ticket, "{:,.0f}"),
    ("registered predicates", lambda r: r.predicates, "{:,.0f}"),
    ("seen_events rows", lambda r: r.seen_events, "{:,.0f}"),
    ("outbox rows", lambda r: r.outbox_rows, "{:,.0f}"),
    ("apply worker CPU per event (µs)", lambda r: r.cpu_us_per_event, "{:,.0f}"),
    ("maintenance worker CPU per day (ms)", lambda r: r.maintenance_ms, "{:,.0f}"),
    ("maintenance worker CPU per day per 1,000 live tickets (ms)",
     lambda r: r.maintenance_ms_per_kticket, "{:,.0f}"),
)


def day_table(rows: Sequence[DayRow]) -> list[str]:
    lines = ["| day | live tickets | Redis B/live ticket | predicates | seen_events | outbox rows "
             "| events | apply µs/event | maintenance ms/day | drift (verify) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.day} | {r.live_tickets:,} | {r.bytes_per_ticket:,.0f} | {r.predicates:,} | "
              f"{r.seen_events:,} | {r.outbox_rows:,} | {r.events:,} | "
              f"{r.cpu_us_per_event:,.0f} | {r.maintenance_ms:,.0f} | "
              f"{r.drift} ({r.verified}) |" for r in rows]
    return lines


class Growth(NamedTuple):
    mid: float  # the fitted line at the run's middle day
    end: float  # ... and at its last day
    change: float  # end / mid - 1
    margin: float  # two standard errors of `change` (the day-to-day scatter around the line)

    @property
    def verdict(self) -> str:
        if self.change <= TARGET:
            return "flat"
        return "GROWS" if self.change - self.margin > TARGET else "unsure (within noise)"


def last_half(days: int) -> int:
    """The index of the run's middle day, where its last half begins."""
    return max(0, (days - 1) // 2)


def growth(values: Sequence[float]) -> Growth:
    """Growth over the last half of the run: the least-squares line through the days from the
    middle day to the last, read at both ends, so one noisy day moves it little; its margin is
    two standard errors of the slope over that span (0 with fewer than three days)."""
    ys = list(values[last_half(len(values)):])
    n = len(ys)
    x_mean, y_mean = (n - 1) / 2, sum(ys) / n
    sxx = sum((x - x_mean) ** 2 for x in range(n))
    slope = (sum((x - x_mean) * (y - y_mean) for x, y in enumerate(ys)) / sxx) if sxx else 0.0
    mid, end = y_mean - slope * x_mean, y_mean + slope * x_mean
    residual = sum((y - (mid + slope * x)) ** 2 for x, y in enumerate(ys))
    slope_se = (residual / (n - 2) / sxx) ** 0.5 if n > 2 else 0.0
    if mid == 0:
        return Growth(mid, end, 0.0 if end == mid else float("inf"), 0.0)
    return Growth(mid, end, end / mid - 1, 2 * slope_se * (n - 1) / abs(mid))


def verdicts(rows: Sequence[DayRow]) -> list[str]:
    lines = [f"| figure | day {last_half(len(rows)) + 1} (fit) | day {len(rows)} (fit) | "
             f"growth over the last half (± 2 s.e.) | verdict (target ≤ {TARGET:.0%}) |",
             "|---|---:|---:|---:|---|"]
    for name, value, fmt in FIGURES:
        found = growth([value(r) for r in rows])
        lines.append(f"| {name} | {fmt.format(found.mid)} | {fmt.format(found.end)} | "
                     f"{found.change:+.1%} ± {found.margin:.1%} | {found.verdict} |")
    drifted = [r.day for r in rows if r.drift]
    lines.append("| verify drift | — | — | — | "
                 + ("0 throughout |" if not drifted else
                    f"DRIFT on day(s) {', '.join(map(str, drifted))} |"))
    return lines


def report(kind: str, args: argparse.Namespace, rows: Sequence[DayRow], driver: Driver) -> str:
    jobs = ", ".join(f"{p.name} every {p.every or driver.svc.config.SCHEDULE_INTERVAL}s "
                     f"(enqueued {driver.jobs_enqueued.get(p.name, 0)}×)" for p in driver.table)
    head = (f"### {kind}: {args.days} simulated days, {args.tickets_per_day} tickets/day, "
            f"{args.ticks_per_day} ticks/day, seed {args.seed}\n\n"
            f"Scheduled jobs run (tally/workers/schedule.py `table`): {jobs}. "
            f"Failed jobs: {driver.failed}.\n")
    return "\n".join([head, *day_table(rows), "", *verdicts(rows), ""])


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(args: argparse.Namespace, workdir: Path) -> Iterator[str]:
    """Each database's report in turn (a database that cannot run is reported as skipped)."""
    for kind in [name.strip() for name in args.db.split(",") if name.strip()]:
        if kind not in ("sqlite", "postgres"):
            raise SystemExit(f"--db: unknown database {kind!r}")
        if kind == "postgres" and not PostgresCluster.available():
            progress("postgres: skipped, initdb/pg_ctl/postgres are not on PATH")
            yield f"### {kind}: skipped (no PostgreSQL binaries on PATH)\n"
            continue
        began = time.monotonic()

        def on_day(row: DayRow, kind: str = kind) -> None:
            progress(f"{kind} day {row.day}/{args.days}: {row.live_tickets:,} live tickets, "
                     f"{row.bytes_per_ticket:,.0f} B/ticket, {row.predicates} predicates, "
                     f"{row.seen_events:,} seen_events, {row.outbox_rows:,} outbox rows, "
                     f"{row.cpu_us_per_event:,.0f} µs/event applied, "
                     f"{row.maintenance_ms:,.0f} ms maintenance, "
                     f"drift {row.drift} "
                     f"({time.monotonic() - began:.0f}s)")

        rows, driver = soak(kind, args, workdir / kind, on_day)
        progress(f"{kind}: done in {time.monotonic() - began:.0f}s; the driver's wall time: "
                 + ", ".join(f"{phase} {spent:.0f}s" for phase, spent in driver.spent.items()))
        yield report(kind, args, rows, driver)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="tally-soak-") as scratch:
        workdir = Path(args.workdir or scratch).resolve()
        parts = [f"## Soak at {commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"]
        print(parts[0], flush=True)
        for part in run(args, workdir):
            print(part, flush=True)
            parts.append(part)
    if args.output:
        Path(args.output).write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
