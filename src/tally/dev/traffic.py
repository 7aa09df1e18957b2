"""`tally demo --traffic`: realistic change events posted to a running tally so the demo moves.

The ticket service's part, played with the demo's service token: it opens tickets for the demo
agent's team, moves them along (priority, status), closes them, and creates notifications for the
demo agent that it later marks read. It remembers what it sent (`Traffic.expected`), so a test
can check the counters moved exactly as the events say. Each event goes in its own POST, with a
new eventId, and is retried with the same eventId on a network error or a 5xx: the ingest
deduplicates by eventId, so a retry never counts twice.
"""
from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from tally.core.clock import from_epoch_ms, iso_ms
from tally.core.model import NOTIFICATION_TYPES, OPEN_STATUSES, PRIORITIES
from tally.dev.demo import DEMO_AGENT, DEMO_TEAMS

# What a step does, by weight: most of a ticket service's traffic is updates.
STEPS = (("open", 3), ("update", 4), ("close", 2), ("notify", 4), ("read", 2))
EVENTS_PATH = "/api/v2/ticketing/events"
# Sends an event batch ({"events": [...]}) and returns the HTTP status.
Post = Callable[[dict[str, Any]], int]


@dataclass
class Traffic:
    """The events of a busy ticket service, one at a time, and what they add up to."""

    rng: random.Random = field(default_factory=random.Random)
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])  # keeps ids unique per run
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> its latest data
    unread: list[str] = field(default_factory=list)  # notification ids created, not yet read
    sent: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _ in STEPS})
    _serial: int = 0
    _version: int = 0

    def next_event(self, now_ms: int) -> dict[str, Any]:
        """The next event; a step with nothing to act on (no open ticket yet) opens one."""
        names, weights = zip(*STEPS)
        step = self.rng.choices(names, weights)[0]
        open_ids = [tid for tid, data in self.tickets.items() if data["status"] in OPEN_STATUSES]
        if step in ("update", "close") and not open_ids:
            step = "open"
        if step == "read" and not self.unread:
            step = "notify"
        self.sent[step] += 1
        stamp = iso_ms_of(now_ms)
        if step == "open":
            self._serial += 1
            ticket = {"id": f"TCK-{self.run}-{self._serial}", "status": "open",
                      "priority": self.rng.choice(PRIORITIES), "teamId": DEMO_TEAMS[0],
                      "assigneeId": self.rng.choice((DEMO_AGENT, None)),
                      "requesterId": f"customer-{self.rng.randint(1, 400)}",
                      "category": self.rng.choice(("hardware", "software", "network")),
                      "tags": [], "isSupportRequest": False, "createdAt": stamp}
            return self._upsert(ticket, now_ms)
        if step in ("update", "close"):
            ticket = dict(self.tickets[self.rng.choice(open_ids)])
            if step == "close":
                ticket["status"] = "closed"
            else:
                ticket["status"] = self.rng.choice(OPEN_STATUSES)
                ticket["priority"] = self.rng.choice(PRIORITIES)
            return self._upsert(ticket, now_ms)
        if step == "notify":
            self._serial += 1
            data = {"id": f"NTF-{self.run}-{self._serial}", "userId": DEMO_AGENT,
                    "type": self.rng.choice(NOTIFICATION_TYPES),
                    "ticketId": self.rng.choice(list(self.tickets) or [None]),
                    "priority": self.rng.choice(PRIORITIES), "createdAt": stamp}
            self.unread.append(data["id"])
            return _event("notification.created", stamp, data)
        ids, self.unread = self.unread[:2], self.unread[2:]
        return _event("notification.read", stamp, {"userId": DEMO_AGENT, "ids": ids})

    def _upsert(self, ticket: dict[str, Any], now_ms: int) -> dict[str, Any]:
        # Versions only grow (an older one is ignored as stale): the clock, kept strictly rising.
        self._version = max(self._version + 1, now_ms)
        self.tickets[ticket["id"]] = ticket
        return _event("ticket.upserted", iso_ms_of(now_ms), {**ticket, "version": self._version})

    def expected(self) -> dict[str, int]:
        """What the events sent so far added: open and closed tickets, unread notifications."""
        closed = sum(data["status"] not in OPEN_STATUSES for data in self.tickets.values())
        return {"open": len(self.tickets) - closed, "closed": closed,
                "unread": len(self.unread)}

    def summary(self) -> str:
        return ", ".join(f"{count} {name}" for name, count in self.sent.items())


def iso_ms_of(now_ms: int) -> str:
    return iso_ms(from_epoch_ms(now_ms))


def _event(kind: str, stamp: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"eventId": str(uuid.uuid4()), "type": kind, "occurredAt": stamp, "data": data}


def http_post(base_url: str, token: str, tenant: str, realm: str,
              timeout: float = 10.0) -> Post:
    """A Post to a running tally's POST /events, as the ticket service would send it."""
    headers = {"Authorization": f"Bearer {token}", "x-tenantid": tenant, "realmname": realm,
               "Content-Type": "application/json", "Accept": "application/json"}

    def post(batch: dict[str, Any]) -> int:
        request = urllib.request.Request(base_url.rstrip("/") + EVENTS_PATH, method="POST",
                                         data=json.dumps(batch).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    return post


def send(traffic: Traffic, post: Post, events: int | None, rate: float,
         progress: Callable[[str], None] = print, every: int = 10,
         now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
         sleep: Callable[[float], None] = time.sleep, retries: int = 5) -> int:
    """Post `events` events (None: until Ctrl-C) at about `rate` a second; returns how many were
    accepted. A 5xx or a network error is retried with the same event (same eventId); a 4xx
    stops the run, since resending the same body cannot fix it."""
    accepted = 0
    while events is None or accepted < events:
        event = traffic.next_event(now_ms())
        for attempt in range(retries + 1):
            try:
                status = post({"events": [event]})
            except OSError as error:  # refused, reset, timed out: the server may be restarting
                status, reason = 0, str(error)
            else:
                reason = f"HTTP {status}"
            if 200 <= status < 300:
                break
            if 400 <= status < 500 or attempt == retries:
                raise RuntimeError(f"POST /events refused event {event['eventId']}: {reason}")
            sleep(min(0.2 * 2 ** attempt, 5.0))
        accepted += 1
        if accepted % every == 0:
            progress(f"traffic: {accepted} events sent ({traffic.summary()})")
        if rate > 0:
            sleep(1.0 / rate)
    return accepted
