"""The change events bench/worker_throughput.py ingests: a seeded, realistic mix over one tenant.

New tickets and updates that move tickets across statuses, priorities, teams and assignees, a few
deletes, and notifications created and read, as the ticket service sends them (wire format).
"""
from __future__ import annotations

import random
import uuid
from typing import Any, Iterator

from tally.core.clock import from_epoch_ms, iso_ms
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, STATUSES

TEAMS = tuple(f"team-{i}" for i in range(6))
AGENTS = tuple(f"agent-{i}" for i in range(16))
USERS = tuple(f"user-{i}" for i in range(40))  # notification recipients
REQUESTERS = tuple(f"customer-{i}" for i in range(200))
CATEGORIES = ("hardware", "software", "network", "access", "billing")
TAGS = ("vip", "urgent", "billing", "bug", "vpn")
HOUR = 3_600_000


class Workload:
    """A seeded stream of wire-format change events over a model of the tenant's tickets."""

    def __init__(self, seed: int, now_ms: int):
        self.rng = random.Random(seed)
        self.now = now_ms
        self.tickets: dict[str, dict[str, Any]] = {}
        self.unread: dict[str, list[str]] = {user: [] for user in USERS}
        self.notifications = 0
        self.created = 0  # tickets ever created (ids stay unique when some are deleted)

    def _stamp(self, lo_h: int, hi_h: int) -> str:
        return iso_ms(from_epoch_ms(self.now + self.rng.randint(lo_h * HOUR, hi_h * HOUR)))

    def _event(self, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"eventId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "type": type_, "occurredAt": iso_ms(from_epoch_ms(self.now)), "data": data}

    def new_ticket(self) -> dict[str, Any]:
        rng = self.rng
        self.created += 1
        data = {"id": f"TCK-{self.created:07d}", "version": 1, "status": rng.choice(STATUSES),
                "priority": rng.choice(PRIORITIES), "teamId": rng.choice(TEAMS),
                "assigneeId": rng.choice(AGENTS + (None,)),
                "requesterId": rng.choice(REQUESTERS), "category": rng.choice(CATEGORIES),
                "tags": rng.sample(TAGS, rng.randint(0, 2)),
                "isSupportRequest": rng.random() < 0.3, "createdAt": self._stamp(-24 * 30, 0),
                "dueAt": self._stamp(-48, 72) if rng.random() < 0.7 else None,
                "slaDueAt": self._stamp(-12, 24) if rng.random() < 0.6 else None}
        self.tickets[data["id"]] = data
        return self._event("ticket.upserted", dict(data))

    def update_ticket(self) -> dict[str, Any]:
        rng = self.rng
        data = self.tickets[rng.choice(list(self.tickets))]
        data["version"] += 1
        for name in rng.sample(("status", "priority", "assigneeId", "teamId", "tags", "dueAt"),
                               rng.randint(1, 2)):
            data[name] = {"status": lambda: rng.choice(STATUSES),
                          "priority": lambda: rng.choice(PRIORITIES),
                          "assigneeId": lambda: rng.choice(AGENTS + (None,)),
                          "teamId": lambda: rng.choice(TEAMS),
                          "tags": lambda: rng.sample(TAGS, rng.randint(0, 2)),
                          "dueAt": lambda: self._stamp(-48, 72)}[name]()
        return self._event("ticket.upserted", dict(data))

    def delete_ticket(self) -> dict[str, Any]:
        data = self.tickets.pop(self.rng.choice(list(self.tickets)))
        return self._event("ticket.deleted", {"id": data["id"], "version": data["version"] + 1})

    def notification(self) -> dict[str, Any]:
        user = self.rng.choice(USERS)
        self.notifications += 1
        nid = f"NTF-{self.notifications:07d}"
        self.unread[user].append(nid)
        return self._event("notification.created", {
            "id": nid, "userId": user, "type": self.rng.choice(NOTIFICATION_TYPES),
            "ticketId": self.rng.choice(list(self.tickets)), "priority":
            self.rng.choice(PRIORITIES), "createdAt": iso_ms(from_epoch_ms(self.now))})

    def read(self) -> dict[str, Any]:
        user = self.rng.choice([u for u, ids in self.unread.items() if ids] or USERS)
        ids, self.unread[user] = self.unread[user][:3], self.unread[user][3:]
        return self._event("notification.read", {"userId": user, "ids": ids or ["NTF-none"]})

    def mixed(self, count: int) -> Iterator[dict[str, Any]]:
        """25% new tickets, 45% updates, 2% deletes, 20% notifications, 8% reads."""
        for _ in range(count):
            roll = self.rng.random()
            if roll < 0.25 or len(self.tickets) < 10:
                yield self.new_ticket()
            elif roll < 0.70:
                yield self.update_ticket()
            elif roll < 0.72:
                yield self.delete_ticket()
            elif roll < 0.92:
                yield self.notification()
            else:
                yield self.read()
