"""Past the redelivery horizon: seen event ids are pruned (only those older than it, in short
batches, by the scheduled job), and an event redelivered after that still counts once: tickets
by their version, notifications by their id and state (docs/operations.md)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tally import jobs as names
from tally.core.clock import epoch_ms
from tally.core.filters import SYSTEM_FILTERS
from tally.errors import ConfigError
from tally.services import ingest as ingest_module
from tally.services import maintenance, outbox
from tally.stores import keys
from tally.settings import from_env
from tally.stores.sql.models import SeenEvent
from tests.support import events as b
from tests.support import oracle
from tests.support import tickets as wire
from tests.support.degraded import drain
from tests.support.randomdata import random_tickets
from tally.workers import jobs, schedule

pytestmark = pytest.mark.both_databases

EVENTS = "/api/v2/ticketing/events"
BADGE = "/api/v2/ticketing/ticket/notification/count"
TZ = "Asia/Calcutta"  # what tests.support.tickets.ask asks in


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def svc(app):
    services = app.extensions["tally"]
    services.clock = Clock(wire.NOW)
    return services


def seen(svc, tenant):
    with svc.db.snapshot() as session:
        return sorted(session.scalars(select(SeenEvent.event_id)
                                      .where(SeenEvent.tenant_id == tenant)))


def post(client, headers, events):
    response = client.post(EVENTS, json={"events": events},
                           headers=headers(user="svc", roles=("ticket_service",)))
    assert response.status_code == 202, response.get_json()
    data = response.get_json()["data"]
    data.pop("watermark")  # tests/http/test_watermarks.py
    return data


def badge(client, headers, user):
    response = client.get(BADGE, headers=headers(user))
    assert response.status_code == 200, response.get_json()
    return response.headers["X-Count-Source"], response.get_json()["data"]


def expected_tickets(tickets, now_ms):
    """What the oracle counts for tests.support.tickets.CALLERS, as `values(ask(...))`."""
    definitions = {spec.id: spec.definition for spec in SYSTEM_FILTERS}
    answers = []
    for principal, view_type in wire.CALLERS:
        counts, summary = oracle.count(tickets, principal, view_type, definitions, None, now_ms,
                                       TZ, False)
        answers.append({"counts": counts, "summary": summary})
    return answers


def _tickets():
    one, two = random_tickets(seed=5, n=2, now_ms=epoch_ms(wire.NOW))
    return dict(one, deleted=False, status="open"), dict(two, deleted=False)


def _ticket_upserted():
    """v1 then v2 (closed): a late copy of either changes nothing."""
    first, other = _tickets()
    second = dict(first, version=2, status="closed")
    return [wire.upserted(first), wire.upserted(other), wire.upserted(second)], [second, other]


def _ticket_deleted():
    """Upserted, deleted, and deleted before it ever arrived (a tombstone): late copies of the
    upserts stay out, late copies of the deletes change nothing."""
    first, other = _tickets()
    gone = dict(first, version=2, deleted=True)
    never = dict(first, id="T-never", version=4)
    return ([wire.upserted(first), wire.upserted(other), wire.deleted(gone), wire.deleted(never),
             wire.upserted(dict(never, version=3))], [gone, other])


def _notification_created():
    """ann's n-1 created, n-2 created then deleted: a late create brings neither back twice."""
    return [b.created("n-1", "ann"), b.created("n-2", "ann", type_="mention"),
            b.deleted("n-2")], []


def _notification_read():
    """n-1 read: a late read leaves the unread count alone (nothing can unread it)."""
    return [b.created("n-1", "ann"), b.created("n-2", "ann"), b.read("ann", ["n-1"])], []


def _notification_deleted():
    """A deleted notification, read before: a late delete (or read) is a no-op."""
    return [b.created("n-1", "ann"), b.created("n-2", "ann", priority="low"),
            b.read("ann", ["n-1"]), b.deleted("n-1")], []


SCENARIOS = {"ticket.upserted": _ticket_upserted, "ticket.deleted": _ticket_deleted,
             "notification.created": _notification_created,
             "notification.read": _notification_read,
             "notification.deleted": _notification_deleted}


def forget_past_the_horizon(app, svc, tenant):
    """Move the clock past the horizon and run the scheduled jobs (the prune and the sweep)
    as a worker would; every per-event record of the tenant is gone (the outbox: but its newest)."""
    retention = svc.config.SEEN_EVENTS_RETENTION_SECONDS
    svc.clock.now = svc.clock.now + timedelta(seconds=retention + 1)
    config = svc.config
    enqueued = schedule.tick(svc.queue_redis, svc.clock.now.timestamp(),
                             config.SCHEDULE_INTERVAL, config.JOB_TIMEOUT, schedule.table(config))
    assert any(job.startswith("forget-seen-events-") for job in enqueued)
    assert drain(app, config.queue_url)
    rows = b.written(svc, tenant)
    # The outbox is pruned by the sweep, but for its newest row (kept so that no id is reused)
    # and that row's entry in the outbox's dedupe set.
    assert (rows["seen_events"], rows["outbox"]) == (0, 1)
    assert svc.counters.client.zcard(keys.applied_key(tenant)) == 1


@pytest.mark.parametrize("event_type", SCENARIOS)
def test_an_event_redelivered_past_the_horizon_counts_once(app, svc, client, headers, tenant_id,
                                                           event_type):
    # Given a history including the event type, each event its own POST, applied by a worker
    history, final_tickets = SCENARIOS[event_type]()
    assert event_type in {event["type"] for event in history}
    for event in history:
        svc.clock.now += timedelta(minutes=1)
        assert post(client, headers, [event]) == {"accepted": 1, "duplicates": 0}
    assert drain(app, svc.config.queue_url)
    # ... and every event id forgotten: the clock past the horizon, the scheduled prune run
    forget_past_the_horizon(app, svc, tenant_id)
    tickets_before = wire.ask(client, headers)
    badge_before = badge(client, headers, "ann")
    # When the identical events are redelivered, and a worker applies what they owe
    assert post(client, headers, history) == {"accepted": len(history), "duplicates": 0}
    assert outbox.backlog(svc.db)[0] == 0  # nothing owed: no counter can change
    drain(app, svc.config.queue_url)
    # Then every count, warm in Redis and in SQL, is what it was, and what the oracle says
    tickets_after = wire.ask(client, headers)
    assert wire.sources(tickets_after) == {"cache"}
    assert wire.values(tickets_after) == wire.values(tickets_before) == expected_tickets(
        final_tickets, epoch_ms(svc.clock.now))
    badge_after = badge(client, headers, "ann")
    assert badge_after == ("cache", badge_before[1])
    assert maintenance.verify(svc, tenant_id).lines == []
    # ... and within the new horizon a third copy is a duplicate again
    assert post(client, headers, history) == {"accepted": 0, "duplicates": len(history)}


def test_the_notification_counts_past_the_horizon_are_the_histories(app, svc, client, headers,
                                                                    tenant_id):
    # Given n-1 read and n-2 deleted, both forgotten
    history = [b.created("n-1", "ann"), b.created("n-2", "ann", type_="mention"),
               b.read("ann", ["n-1"]), b.deleted("n-2")]
    post(client, headers, history)
    drain(app, svc.config.queue_url)
    before = badge(client, headers, "ann")[1]
    assert (before["total"], before["unread"]) == (1, 0)
    forget_past_the_horizon(app, svc, tenant_id)
    # When the whole history comes again, twice
    post(client, headers, history)
    post(client, headers, history)
    drain(app, svc.config.queue_url)
    # Then ann still has one notification, read, last updated when it was read
    assert badge(client, headers, "ann") == ("cache", before)


def test_forget_seen_deletes_only_ids_older_than_the_horizon_in_batches(svc, tenant_id):
    # Given ten ids received before the cutoff, one at it and one after it
    cutoff = epoch_ms(wire.NOW)
    old = [b.created(f"old-{n}") for n in range(10)]
    for n, event in enumerate(old):
        ingest_module.ingest(svc.db, tenant_id, b.loaded(event), cutoff - 1000 + n)
    at, after = b.created("at"), b.created("after")
    ingest_module.ingest(svc.db, tenant_id, b.loaded(at), cutoff)
    ingest_module.ingest(svc.db, tenant_id, b.loaded(after), cutoff + 1)
    # When forgetting three at a time
    forgotten = ingest_module.forget_seen(svc.db, cutoff, batch=3)
    # Then the ten old ids went in four transactions (3 + 3 + 3 + 1), the others stay
    assert (forgotten.rows, forgotten.batches) == (10, 4)
    assert seen(svc, tenant_id) == sorted([at["eventId"], after["eventId"]])
    assert ingest_module.forget_seen(svc.db, cutoff, batch=3) == ingest_module.Forgotten(0, 1)


def test_a_retention_of_zero_keeps_every_id(app, svc, tenant_id):
    event = b.created("n-1")
    ingest_module.ingest(svc.db, tenant_id, b.loaded(event), epoch_ms(wire.NOW))
    svc.config.SEEN_EVENTS_RETENTION_SECONDS = 0
    svc.clock.now = wire.NOW + timedelta(days=3650)
    with app.app_context():
        assert jobs.forget_seen_events() == {"skipped": True}
    assert seen(svc, tenant_id) == [event["eventId"]]


def test_the_horizon_settings_come_from_the_environment():
    config = from_env({"TALLY_ENV": "test", "TALLY_SEEN_EVENTS_RETENTION_SECONDS": "0",
                       "TALLY_SEEN_EVENTS_PRUNE_INTERVAL_SECONDS": "60"})
    assert (config.SEEN_EVENTS_RETENTION_SECONDS, config.SEEN_EVENTS_PRUNE_INTERVAL_SECONDS) == (
        0, 60)
    default = from_env({"TALLY_ENV": "production"})
    assert default.SEEN_EVENTS_RETENTION_SECONDS == 7 * 86_400
    with pytest.raises(ConfigError, match="TALLY_SEEN_EVENTS_RETENTION_SECONDS"):
        from_env({"TALLY_SEEN_EVENTS_RETENTION_SECONDS": "-1"})


def test_the_schedule_runs_the_prune_at_its_interval_or_never(svc):
    config = svc.config
    config.SEEN_EVENTS_PRUNE_INTERVAL_SECONDS = 600
    assert ("forget-seen-events", names.FORGET_SEEN_EVENTS, 600) in [
        (p.name, p.path, p.every) for p in schedule.table(config)]
    config.SEEN_EVENTS_PRUNE_INTERVAL_SECONDS = 0
    assert names.FORGET_SEEN_EVENTS not in {p.path for p in schedule.table(config)}
