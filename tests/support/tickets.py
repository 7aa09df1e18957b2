"""Ticket change events on the wire, and posting them as the ticket service would."""
from __future__ import annotations

import uuid
from typing import Any, Iterable

from tally.core.clock import from_epoch_ms, iso_ms

WIRE_FIELDS = ("id", "version", "status", "priority", "teamId", "assigneeId", "requesterId",
               "category", "tags", "isSupportRequest")


def _iso(value: int | None) -> str | None:
    return None if value is None else iso_ms(from_epoch_ms(value))


def upserted(ticket: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    data = {name: ticket[name] for name in WIRE_FIELDS}
    data.update(createdAt=_iso(ticket["createdAt"]), dueAt=_iso(ticket["dueAt"]),
                slaDueAt=_iso(ticket["slaDueAt"]))
    return {"eventId": event_id or str(uuid.uuid4()), "type": "ticket.upserted",
            "occurredAt": "2026-01-01T00:00:00.000Z", "data": data}


def deleted(ticket: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"eventId": event_id or str(uuid.uuid4()), "type": "ticket.deleted",
            "occurredAt": "2026-01-01T00:00:00.000Z",
            "data": {"id": ticket["id"], "version": ticket["version"]}}


def as_events(tickets: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upserts for every ticket, then deletes for those marked deleted (at a newer version)."""
    events = []
    for ticket in tickets:
        live = dict(ticket, deleted=False)
        events.append(upserted(live))
        if ticket.get("deleted"):
            ticket["version"] = ticket["version"] + 1
            events.append(deleted(ticket))
    return events


def post_events(client: Any, headers: dict[str, str], events: list[dict[str, Any]],
                chunk: int = 500) -> None:
    for start in range(0, len(events), chunk):
        response = client.post("/api/v2/ticketing/events", headers=headers,
                               json={"events": events[start:start + chunk]})
        assert response.status_code == 202, response.get_json()
