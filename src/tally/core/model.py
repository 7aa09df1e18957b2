"""Value types shared by the core: the caller, notification kinds, change events and the count
payload."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The roles tally knows (contract §2); those that may count, and the one that posts events and
# never counts.
COUNT_ROLES = ("ticket_user", "ticket_agent", "ticket_admin")
SERVICE_ROLE = "ticket_service"
ROLES = (*COUNT_ROLES, SERVICE_ROLE)
NOTIFICATION_TYPES = ("assignment", "statusChange", "comment", "mention", "slaWarning",
                      "slaBreach", "approval", "escalation")
PRIORITIES = ("critical", "high", "medium", "low")
OPEN_STATUSES = ("open", "in_progress", "pending")
CLOSED_STATUSES = ("resolved", "closed", "cancelled")
STATUSES = OPEN_STATUSES + CLOSED_STATUSES
# A UUID in canonical form (lowercase, hyphenated): tenant ids, custom filter ids. Use fullmatch.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A user, team or actor id as tokens and events carry it (and Redis keys embed it).
ID_PATTERN = re.compile(r"^[A-Za-z0-9._@:|-]{1,64}$")


def canonical_uuid(value: Any) -> str | None:
    """`value` lowercased when it is a UUID in the canonical 8-4-4-4-12 hex form (any case),
    else None: braces, `urn:uuid:`, missing hyphens and surrounding space are not UUIDs here
    (contract §2), so one tenant has one spelling in every key, log line and comparison."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    if CANONICAL_UUID.fullmatch(value):  # what clients send, every request: no lowering needed
        return value
    lowered = value.lower()
    return lowered if CANONICAL_UUID.fullmatch(lowered) else None


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
        return SERVICE_ROLE in self.roles


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
    """A count, where it came from ('cache', 'recomputed' or 'sql': X-Count-Source), and the
    tenant's watermark it reflects (X-Count-Watermark: every write up to it is counted)."""

    value: object
    source: str
    watermark: int = 0


@dataclass(frozen=True)
class Event:
    """One validated change event (contract §4); `data` uses snake_case keys and epoch-ms
    timestamps (tally.http.schemas.events validates a POST /events body into these)."""

    event_id: str
    type: str
    occurred_at: int
    data: dict[str, Any]
