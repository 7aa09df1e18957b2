"""Example requests and responses for the OpenAPI document, shaped as the API sends them (the
success bodies follow the seed documents)."""
from __future__ import annotations

from typing import Any

TIMESTAMP = "2025-07-10T12:34:56.789Z"
TICKET = "T-311"


def ok(data: Any, message: str) -> dict[str, Any]:
    return {"success": True, "message": message, "data": data, "timestamp": TIMESTAMP}


NOTIFICATION_COUNT = ok({
    "total": 24, "unread": 12,
    "byType": {"assignment": 3, "statusChange": 4, "comment": 2, "mention": 1, "slaWarning": 2,
               "slaBreach": 0, "approval": 0, "escalation": 0},
    "byPriority": {"critical": 2, "high": 5, "medium": 3, "low": 2},
    "lastUpdated": TIMESTAMP}, "Notification count retrieved successfully")

NOTIFICATION_LIST = ok({"items": [
    {"id": "n-1043", "type": "mention", "ticketId": TICKET, "priority": "high",
     "createdAt": TIMESTAMP, "read": False},
    {"id": "n-1042", "type": "assignment", "ticketId": TICKET, "priority": "high",
     "createdAt": "2025-07-10T12:30:00.000Z", "read": True}],
    "nextCursor": "WzE3NTIxNTA2MDAwMDAsIm4tMTA0MiJd"}, "Notifications retrieved successfully")

READ_BODY = {"ids": ["n-1042", "n-1043"]}

TICKET_COUNT_BODY = {"templateProfileFilterId": None,
                     "filterIds": ["all", "3745", "3747", "4195", "7471"],
                     "timezone": "Asia/Calcutta"}

TICKET_COUNT = ok({
    "counts": {"all": 100, "3745": 42, "3747": 11, "4195": 9, "7471": 6},
    "filterDetails": {
        "all": {"id": "all", "name": "All Tickets", "type": "system"},
        "3745": {"id": "3745", "name": "Open", "type": "status", "color": "#3B82F6"},
        "3747": {"id": "3747", "name": "In Progress", "type": "status", "color": "#F59E0B"},
        "4195": {"id": "4195", "name": "Critical", "type": "priority", "color": "#DC2626"},
        "7471": {"id": "7471", "name": "Assigned to Me", "type": "assignment"}},
    "summary": {"totalOpen": 42, "totalClosed": 58, "slaBreached": 3, "dueToday": 5,
                "overdue": 7},
    "computedAt": TIMESTAMP, "timezone": "Asia/Calcutta"}, "Ticket counts retrieved successfully")

FILTER_BODY = {"name": "VIP tickets of my teams", "color": "#3B82F6", "shared": False,
               "conditions": {"all": [{"field": "tags", "op": "contains", "value": "vip"},
                                      {"field": "teamId", "op": "in", "value": "$myTeams"}]}}

FILTER = ok({"id": "a7069dca-b9b1-4bf5-9a41-20dd75bf6f62", "name": FILTER_BODY["name"],
             "type": "custom", "color": "#3B82F6", "conditions": FILTER_BODY["conditions"],
             "shared": False}, "Filter created successfully")

FILTERS = ok({"items": [
    {"id": "all", "name": "All Tickets", "type": "system"},
    {"id": "3745", "name": "Open", "type": "status", "color": "#3B82F6",
     "conditions": {"all": [{"field": "status", "op": "eq", "value": "open"}]}},
    FILTER["data"]]}, "Filters retrieved successfully")

DELETED = ok({"id": "a7069dca-b9b1-4bf5-9a41-20dd75bf6f62", "deleted": True},
             "Filter deleted successfully")

EVENTS_BODY = {"events": [
    {"eventId": "0b5f3c2e-6d1a-4f7b-8c9d-2e3f4a5b6c7d", "type": "ticket.upserted",
     "occurredAt": TIMESTAMP,
     "data": {"id": TICKET, "version": 3, "status": "open", "priority": "high",
              "teamId": "team-support", "assigneeId": "agent-7", "requesterId": "user-42",
              "category": "access", "tags": ["vip"], "isSupportRequest": True,
              "createdAt": "2025-07-09T08:00:00.000Z", "dueAt": "2025-07-11T08:00:00.000Z",
              "slaDueAt": None}},
    {"eventId": "1c6a4d3f-7e2b-4a8c-9d0e-3f4a5b6c7d8e", "type": "notification.created",
     "occurredAt": TIMESTAMP,
     "data": {"id": "n-1044", "userId": "agent-7", "type": "assignment", "ticketId": TICKET,
              "priority": "high", "createdAt": TIMESTAMP}}]}

INGESTED = ok({"accepted": 2, "duplicates": 0, "watermark": "42.9f86d081"}, "Events accepted")
