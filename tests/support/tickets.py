"""Ticket change events on the wire, posting them as the ticket service would, and the ticket
world the count tests share: seeded tickets ingested and applied under a frozen clock."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

from tally.core.clock import epoch_ms, from_epoch_ms, iso_ms
from tally.core.filters import SYSTEM_FILTERS
from tally.services.outbox import apply_pending
from tally.stores import keys
from tests.support.randomdata import principals, random_tickets

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


def ingest(services: Any, client: Any, headers: Any, tenant: str, tickets: list[dict]) -> None:
    """Post ticket events as the ticket service would, and apply them to the counters."""
    post_events(client, headers(user="svc", roles=("ticket_service",)), as_events(tickets))
    apply_pending(services, tenant)


def world(app: Any, client: Any, headers: Any, tenant: str, *, now: datetime, n: int,
          seed: int) -> tuple[Any, list[dict]]:
    """`n` random tickets (from `seed`) ingested over HTTP and applied, the app's clock frozen at
    `now`: (services, tickets). The `ticket_world` fixture binds the test's app and tenant."""
    services = app.extensions["tally"]
    services.clock = lambda: now
    tickets = random_tickets(seed=seed, n=n, now_ms=epoch_ms(now))
    ingest(services, client, headers, tenant, tickets)
    return services, tickets


NOW = datetime(2026, 3, 8, 15, 30, 12, tzinfo=timezone.utc)  # a DST day in America/New_York
SYSTEM_IDS = [spec.id for spec in SYSTEM_FILTERS]
COUNT_URL = "/api/v2/ticketing/ticket/count?type={}&module=ticketing"
# An admin (bucket all), an agent with two teams, a user (requester bucket): many kinds of cells.
CALLERS = ((principals()[11], "template"), (principals()[7], "agent"), (principals()[1], "user"))


def ask(client: Any, headers: Any, ids=tuple(SYSTEM_IDS)) -> list[tuple[str, dict]]:
    """Every caller's count answer: (X-Count-Source, counts and summary)."""
    out = []
    for principal, view_type in CALLERS:
        response = client.post(COUNT_URL.format(view_type),
                               json={"filterIds": list(ids), "timezone": "Asia/Calcutta"},
                               headers=headers(user=principal.user_id, roles=principal.roles,
                                               teams=principal.teams))
        assert response.status_code == 200, response.get_json()
        data = response.get_json()["data"]
        out.append((response.headers["X-Count-Source"],
                    {"counts": data["counts"], "summary": data["summary"]}))
    return out


def values(answers: list[tuple[str, dict]]) -> list[dict]:
    return [data for _, data in answers]


def sources(answers: list[tuple[str, dict]]) -> set[str]:
    return {source for source, _ in answers}


def warm_world(app: Any, client: Any, headers: Any, tenant: str,
               n: int = 120) -> tuple[Any, list[dict]]:
    """The maintenance tests' world (seed 11, at NOW): every caller's cells warm after one ask."""
    made = world(app, client, headers, tenant, now=NOW, n=n, seed=11)
    assert sources(ask(client, headers)) == {"recomputed"}
    return made


def only_mp(raw: Any, tenant: str, filter_id: str) -> str:
    """The one MP a system filter without `$me` was materialised into."""
    (mp,) = raw.smembers(keys.filter_mps_key(tenant, filter_id))
    return mp
