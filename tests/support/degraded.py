"""Shared pieces of the degraded-mode tests: a known event history, its counts, and the checks."""
from __future__ import annotations

from typing import Any

import redis
from rq import Queue, SimpleWorker

from tally import jobs
from tally.services import maintenance
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES
from tally.services import outbox
from tests.support import events as b

EVENTS = b.EVENTS
NOTIFICATIONS = "/api/v2/ticketing/ticket/notification/count"
READ = "/api/v2/ticketing/ticket/notification/read"
COUNT = "/api/v2/ticketing/ticket/count?type=template&module=ticketing"
ASK = {"filterIds": ["all", "3745", "3746", "4195", "4197"]}  # all, open, resolved, crit., med.
USER, ADMIN, SERVICE = ("ticket_user",), ("ticket_admin",), ("ticket_service",)


def first_events() -> list[dict[str, Any]]:
    """ann: 4 notifications (n-1 read); bob: 1; tickets t-1..t-3 (t-3 resolved, critical)."""
    return [b.created("n-1", "ann", "comment", "high"), b.created("n-2", "ann", "mention", "low"),
            b.created("n-3", "ann", "comment", "critical"), b.created("n-4", "ann"),
            b.created("n-5", "bob"), b.read("ann", ["n-1"]),
            b.ticket("t-1", 1), b.ticket("t-2", 1, priority="critical"),
            b.ticket("t-3", 1, status="resolved", priority="critical")]


def second_events() -> list[dict[str, Any]]:
    """ann: +2 notifications, n-2 read, n-3 deleted; t-1 resolved, t-2 deleted, t-4 new."""
    return [b.created("n-6", "ann", "assignment", "medium"), b.created("n-7", "ann", "comment"),
            b.read("ann", ["n-2"]), b.deleted("n-3"),
            b.ticket("t-1", 2, status="resolved"), b.ticket_deleted("t-2", 2),
            b.ticket("t-4", 1, priority="critical")]


def _by(**counts: int) -> dict[str, int]:
    return dict.fromkeys(NOTIFICATION_TYPES, 0) | counts


def _prio(**counts: int) -> dict[str, int]:
    return dict.fromkeys(PRIORITIES, 0) | counts


# ann's notification counts and the admin's ticket counts after each history.
EMPTY = {"ann": (0, 0, _by(), _prio()), "tickets": {"all": 0, "3745": 0, "3746": 0, "4195": 0,
                                                    "4197": 0}}
AFTER_FIRST = {
    "ann": (4, 3, _by(comment=2, mention=1), _prio(low=1, critical=1, high=1)),
    "tickets": {"all": 3, "3745": 2, "3746": 1, "4195": 2, "4197": 1},
}
AFTER_SECOND = {
    "ann": (5, 3, _by(comment=2, assignment=1), _prio(high=2, medium=1)),
    "tickets": {"all": 3, "3745": 1, "3746": 2, "4195": 2, "4197": 1},
}


def notification_numbers(response: Any) -> tuple[Any, ...]:
    data = response.get_json()["data"]
    return data["total"], data["unread"], data["byType"], data["byPriority"]


def ticket_numbers(response: Any) -> dict[str, int]:
    return response.get_json()["data"]["counts"]


def assert_answers(client: Any, tokens: dict[str, dict], expected: dict, source: str) -> None:
    """ann's badge and the admin's ticket counts equal `expected`, answered from `source`."""
    badge = client.get(NOTIFICATIONS, headers=tokens["ann"])
    assert badge.status_code == 200, badge.get_json()
    assert badge.headers["X-Count-Source"] == source
    assert notification_numbers(badge) == expected["ann"]
    counts = client.post(COUNT, json=ASK, headers=tokens["admin"])
    assert counts.status_code == 200, counts.get_json()
    assert counts.headers["X-Count-Source"] == source
    assert ticket_numbers(counts) == expected["tickets"]


def assert_no_drift(services: Any, tenant: str) -> None:
    """Nothing owed, the counters ann and the admin read are warm, and they equal SQL."""
    assert outbox.backlog(services.db)[0] == 0
    assert services.counters.read_notifications(tenant, "ann") is not None
    assert maintenance.verify(services, tenant).lines == []


def drain(app: Any, queue_url: str) -> bool:
    """Run every queued job in this process, inside `app`, like a worker would."""
    connection = redis.Redis.from_url(queue_url)
    try:
        queues = [Queue(name, connection=connection) for name in jobs.QUEUES]
        with app.app_context():
            return SimpleWorker(queues, connection=connection).work(burst=True)
    finally:
        connection.close()
