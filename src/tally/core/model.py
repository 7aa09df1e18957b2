"""Value types shared by the core: the caller, notification kinds, change events and the count
payload."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ROLES = ("ticket_user", "ticket_agent", "ticket_admin", "ticket_service")
# The roles that may count (contract §2): a ticket_service token posts events and never counts.
COUNT_ROLES = ("ticket_user", "ticket_agent", "ticket_admin")
NOTIFICATION_TYPES = ("assignment", "statusChange", "comment", "mention", "slaWarning",
                      "slaBreach", "approval", "escalation")
PRIORITIES = ("critical", "high", "medium", "low")
OPEN_STATUSES = ("open", "in_progress", "pending")
CLOSED_STATUSES = ("resolved", "closed", "cancelled")
STATUSES = OPEN_STATUSES + CLOSED_STATUSES
# A UUID in canonical form (lowercase, hyphenated): tenant ids, custom filter ids. Use fullmatch.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A user, team, ticket or notification id as tokens and events carry them (they end up in keys).
ID_PATTERN = re.compile(r"^[A-Za-z0-9._@:|-]{1,64}$")


@dataclass(frozen=True)
class Event:
    """One validated change event; `data` uses snake_case keys and epoch-ms timestamps."""

    event_id: str
    type: str
    occurred_at: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Principal:
    """Who is calling: built once per request from a verified token."""

    user_id: str
    tenant_id: str
    realm: str
    roles: frozenset[str] = field(default_factory=frozenset)
    teams: tuple[str, ...] = ()

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_service(self) -> bool:
        return "ticket_service" in self.roles


@dataclass(frozen=True)
class NotificationCounts:
    """One user's notification counters, as the badge endpoint reports them."""

    total: int
    unread: int
    by_type: dict[str, int]
    by_priority: dict[str, int]
    last_updated: int | None  # epoch ms, None if the user's notifications never changed

    @classmethod
    def empty(cls) -> "NotificationCounts":
        return cls(0, 0, dict.fromkeys(NOTIFICATION_TYPES, 0), dict.fromkeys(PRIORITIES, 0), None)


@dataclass(frozen=True)
class CountResult:
    """A count and where it came from: 'cache', 'recomputed' or 'sql' (X-Count-Source)."""

    value: object
    source: str
