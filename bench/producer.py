"""`python -m bench.producer SPEC.json OUT.json`: POST change events at a steady rate.

The ticket service's side of the event-to-visible benchmark, in its own process. Batches leave
on a fixed schedule (rate ÷ batch per second) through a few keep-alive connections, so a slow
answer delays no later batch. Each batch is `notification.created` for distinct users (the
watched ones, round robin) mixed with `ticket.upserted` for existing tickets (a version bump
with new fields, as agents edit tickets). OUT.json records, per batch, when it was scheduled,
sent and answered, its status, and the (user, sequence) of each notification it carried.
"""
from __future__ import annotations

import http.client
import json
import queue
import random
import sys
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from tally.core.clock import iso_ms, utc_now
from tally.core.model import NOTIFICATION_TYPES, PRIORITIES, STATUSES

PATH = "/api/v2/ticketing/events"


def _ticket(rng: random.Random, ticket: str, version: int, now: str) -> dict[str, Any]:
    from bench.seed import AGENTS, CATEGORIES, REQUESTERS, TEAMS

    return {"id": ticket, "version": version, "status": rng.choice(STATUSES),
            "priority": rng.choice(PRIORITIES), "teamId": rng.choice(TEAMS),
            "assigneeId": rng.choice(AGENTS), "requesterId": rng.choice(REQUESTERS),
            "category": rng.choice(CATEGORIES), "tags": [], "isSupportRequest": False,
            "createdAt": now, "dueAt": now, "slaDueAt": None}


def batches(spec: dict[str, Any]) -> list[tuple[str, list[list[Any]]]]:
    """Every batch's body and the (user, sequence) of its notifications, made up front."""
    rng = random.Random(spec["seed"])
    users, batch = spec["users"], spec["batch"]
    count = int(spec["rate"] * spec["seconds"] / batch)
    versions: dict[str, int] = {}
    sequence = dict.fromkeys(users, 0)
    out, turn = [], 0
    for number in range(count):
        now = iso_ms(utc_now())
        events, carried = [], []
        for slot in range(batch):
            if rng.random() < spec["ticket_share"]:
                ticket = f"T-{rng.randrange(spec['tickets']):07d}"
                versions[ticket] = versions.get(ticket, 1) + 1
                events.append({"eventId": str(uuid.uuid4()), "type": "ticket.upserted",
                               "occurredAt": now,
                               "data": _ticket(rng, ticket, versions[ticket], now)})
                continue
            user = users[turn % len(users)]
            turn += 1
            sequence[user] += 1
            carried.append([user, sequence[user]])
            events.append({"eventId": str(uuid.uuid4()), "type": "notification.created",
                           "occurredAt": now,
                           "data": {"id": f"NB-{number}-{slot}", "userId": user,
                                    "type": rng.choice(NOTIFICATION_TYPES),
                                    "ticketId": f"T-{rng.randrange(spec['tickets']):07d}",
                                    "priority": rng.choice(PRIORITIES), "createdAt": now}})
        out.append((json.dumps({"events": events}), carried))
    return out


def _sender(spec: dict[str, Any], jobs: queue.Queue, records: list[dict[str, Any]]) -> None:
    target = urlsplit(spec["base_url"])
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    while True:
        job = jobs.get()
        if job is None:
            return
        scheduled, body, carried = job
        sent = time.time()
        try:
            connection.request("POST", PATH, body=body, headers=spec["headers"])
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            status = 0
        records.append({"scheduled": scheduled, "sent": sent, "answered": time.time(),
                        "status": status, "notifications": carried})


def produce(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Send every batch on schedule; returns one record per batch."""
    work = batches(spec)
    interval = spec["batch"] / spec["rate"]
    jobs: queue.Queue = queue.Queue()
    records: list[dict[str, Any]] = []
    senders = [threading.Thread(target=_sender, args=(spec, jobs, records), daemon=True)
               for _ in range(spec["senders"])]
    for thread in senders:
        thread.start()
    start = time.time() + 0.2
    for number, (body, carried) in enumerate(work):
        scheduled = start + number * interval
        time.sleep(max(0.0, scheduled - time.time()))
        jobs.put((scheduled, body, carried))
    for _ in senders:
        jobs.put(None)
    for thread in senders:
        thread.join()
    return records


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path) as handle:
        spec = json.load(handle)
    records = produce(spec)
    with open(out_path, "w") as handle:
        json.dump(records, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
