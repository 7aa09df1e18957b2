"""Raw change events as the ticket service sends them (wire format, camelCase), and the rows an
ingest writes."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from tally.http.schemas.events import Event, load_events
from tally.stores.sql.models import Notification, OutboxRow, SeenEvent, Ticket

WHEN = "2025-07-10T12:34:56.789Z"
EVENTS = "/api/v2/ticketing/events"


def event(type_: str, data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"eventId": event_id or str(uuid.uuid4()), "type": type_, "occurredAt": WHEN,
            "data": data}


def created(nid: str, user: str = "user-1", type_: str = "comment", priority: str = "high",
            **extra: Any) -> dict[str, Any]:
    return event("notification.created", {"id": nid, "userId": user, "type": type_,
                                          "ticketId": "t-1", "priority": priority,
                                          "createdAt": WHEN}, **extra)


def read(user: str, ids: list[str], **extra: Any) -> dict[str, Any]:
    return event("notification.read", {"userId": user, "ids": ids}, **extra)


def deleted(nid: str, **extra: Any) -> dict[str, Any]:
    return event("notification.deleted", {"id": nid}, **extra)


def ticket(tid: str, version: int, **fields: Any) -> dict[str, Any]:
    data = {"id": tid, "version": version, "status": "open", "priority": "medium",
            "teamId": "team-a", "assigneeId": "agent-1", "requesterId": "user-1",
            "category": "it", "tags": ["vpn"], "isSupportRequest": False, "createdAt": WHEN,
            "dueAt": None, "slaDueAt": None}
    data.update(fields)
    return event("ticket.upserted", data)


def ticket_deleted(tid: str, version: int) -> dict[str, Any]:
    return event("ticket.deleted", {"id": tid, "version": version})


def loaded(*raw: dict[str, Any]) -> list[Event]:
    return load_events({"events": list(raw)})


MODELS = {"tickets": Ticket, "notifications": Notification, "seen_events": SeenEvent,
          "outbox": OutboxRow}


def written(services, tenant: str) -> dict[str, int]:
    """Rows the tenant has in every table an ingest writes to."""
    with services.db.snapshot() as session:
        return {name: session.scalar(select(func.count()).select_from(model)
                                     .where(model.tenant_id == tenant))
                for name, model in MODELS.items()}


NOTHING = dict.fromkeys(MODELS, 0)
