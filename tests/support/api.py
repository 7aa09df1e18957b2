"""The API as the tests call it: paths, a small valid body for every body endpoint, and the
error envelope's check."""
from __future__ import annotations

API = "/api/v2/ticketing"
COUNT = API + "/ticket/count?type=template&module=ticketing"
BODIES = {  # every endpoint taking a body, with a small valid one
    COUNT: {"filterIds": ["all"]},
    API + "/filters": {"name": "vip", "conditions": {"all": [
        {"field": "tags", "op": "contains", "value": "vip"}]}},
    API + "/ticket/notification/read": {"all": True},
    API + "/events": {"events": [{
        "eventId": "6f1c9a52-3b7e-4d0a-9e8f-1a2b3c4d5e6f", "type": "notification.created",
        "occurredAt": "2026-03-08T06:00:00.000Z",
        "data": {"id": "n-1", "userId": "u1", "type": "mention", "ticketId": "T1",
                 "priority": "high", "createdAt": "2026-03-08T06:00:00.000Z"}}]},
}


def error_of(response, status: int, code: str) -> dict:
    body = response.get_json()
    assert response.status_code == status, body
    assert body["success"] is False and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]
