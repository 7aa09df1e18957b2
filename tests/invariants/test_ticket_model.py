"""The randomised ticket model: the real pipeline's counts equal a plain-Python oracle.

2,000 random tickets, then a random stream of updates, deletes, redeliveries and stale versions,
go over HTTP to a real RQ worker process; callers of every role and team mix ask for every system
filter, three custom filters (one with $me, one with $myTeams and a time window) and a template
profile in four timezones, while the counters are warm and again after Redis is emptied.
"""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from tally.core.clock import epoch_ms
from tests.support import oracle
from tally.core.conditions import parse_definition
from tally.core.filters import SYSTEM_FILTERS
from tally.services import outbox
from tests.support.randomdata import principals, random_tickets
from tests.support.tickets import deleted, post_events, upserted
from tests.support import processes as procs

pytestmark = pytest.mark.both_databases

SEED = 20261123
NOW = datetime(2026, 11, 1, 14, 0, 0, tzinfo=timezone.utc)  # New York falls back today
ZONES = ("UTC", "Asia/Calcutta", "America/New_York", "Pacific/Chatham")
CUSTOM = {
    "vip-or-critical": {"any": [{"field": "tags", "op": "contains", "value": "vip"},
                                {"field": "priority", "op": "eq", "value": "critical"}]},
    "mine-not-closed": {"all": [{"field": "assigneeId", "op": "eq", "value": "$me"},
                                {"field": "status", "op": "ne", "value": "closed"}]},
    "my-teams-sla-4h": {"all": [{"field": "teamId", "op": "in", "value": "$myTeams"},
                                {"field": "slaDueAt", "op": "within_next", "value": "4h"}]},
}
PROFILE = {"all": [{"field": "priority", "op": "in", "value": ["critical", "high", "medium"]}]}
URL = "/api/v2/ticketing/ticket/count?type={}&module=ticketing"


class Truth:
    """Our own copy of the tickets, with the contract's version rules."""

    def __init__(self) -> None:
        self.tickets: dict[str, dict] = {}

    def upsert(self, ticket: dict) -> None:
        old = self.tickets.get(ticket["id"])
        if old is None or ticket["version"] > old["version"]:
            self.tickets[ticket["id"]] = dict(ticket, deleted=False)

    def delete(self, ticket_id: str, version: int) -> None:
        old = self.tickets.get(ticket_id)
        if old is not None and version >= old["version"]:
            self.tickets[ticket_id] = dict(old, version=version, deleted=True)


def stream(rng: random.Random, truth: Truth, now_ms: int, n: int) -> list[dict]:
    """Updates, deletes, stale versions and redeliveries, applied to `truth` as tally would."""
    fresh = random_tickets(SEED + 1, n, now_ms)
    events: list[dict] = []
    for i in range(n):
        target = truth.tickets[rng.choice(sorted(truth.tickets))]
        roll = rng.random()
        if roll < 0.1:
            version = target["version"] + 1
            events.append(deleted({"id": target["id"], "version": version}))
            truth.delete(target["id"], version)
        elif roll < 0.2 and target["version"] > 1:  # a stale version: ignored
            events.append(upserted(dict(fresh[i], id=target["id"], version=target["version"] - 1)))
        else:
            changed = dict(fresh[i], id=target["id"], version=target["version"] + 1)
            events.append(upserted(changed))
            truth.upsert(changed)
        if rng.random() < 0.1:
            events.append(dict(events[rng.randrange(len(events))]))  # a redelivery
    return events


def ask(client, headers, principal, view_type, ids, tz, profile):
    return client.post(URL.format(view_type), json={"filterIds": ids, "timezone": tz,
                                                    "templateProfileFilterId": profile},
                       headers=headers(user=principal.user_id, roles=principal.roles,
                                       teams=principal.teams))


def check_all(client, headers, truth, filters, profile_id, callers, expect_source):
    definitions = {fid: d for fid, d in filters.items()}
    ids = list(definitions)
    profile = parse_definition(PROFILE)
    checked = 0
    for i, principal in enumerate(callers):
        views = ["template", "user"] + (["agent"] if principal.has_any(
            "ticket_agent", "ticket_admin") else [])
        for j, view_type in enumerate(views):
            tz = ZONES[(i + j) % len(ZONES)]  # every zone in every phase, not every product
            for with_profile in (False, True):
                response = ask(client, headers, principal, view_type, ids, tz,
                               profile_id if with_profile else None)
                assert response.status_code == 200, response.get_json()
                assert response.headers["X-Count-Source"] in expect_source
                data = response.get_json()["data"]
                counts, summary = oracle.count(
                    truth.tickets.values(), principal, view_type, definitions,
                    profile if with_profile else None, epoch_ms(NOW), tz, False)
                where = (principal, view_type, tz, with_profile)
                assert data["counts"] == counts, where
                assert data["summary"] == summary, where
                checked += 1
    return checked


@pytest.fixture
def model_size() -> tuple[int, int]:
    """Tickets loaded first, and changes streamed after (tests/cluster runs a smaller model)."""
    return 2000, 1500


@pytest.fixture
def worker(db_url, counter_store, realms_file, tmp_path):
    log = tmp_path / "worker.log"
    process = procs.start("tally.workers.run", counter_store.process_env(db_url, realms_file),
                          log=log)
    yield process, log
    procs.stop(process)


@pytest.mark.slow  # a real worker process
def test_pipeline_counts_equal_the_oracle_warm_and_cold(app, client, headers, tenant_id, worker,
                                                        counter_store, model_size, capsys):
    process, log = worker
    svc = app.extensions["tally"]
    svc.clock = lambda: NOW
    rng = random.Random(SEED)
    service = headers(user="svc", roles=("ticket_service",))
    admin = headers(user="u5", roles=("ticket_admin",))

    # Given 2,000 tickets (model_size; with some redelivered), three shared custom filters and a
    # profile
    loaded, streamed = model_size
    truth = Truth()
    initial = [dict(t, deleted=False) for t in random_tickets(SEED, loaded, epoch_ms(NOW))]
    events = [upserted(t) for t in initial]
    events += [dict(e) for e in rng.sample(events, loaded // 20)]
    for ticket in initial:
        truth.upsert(ticket)
    post_events(client, service, events)
    filters = {spec.id: spec.definition for spec in SYSTEM_FILTERS}
    for name, conditions in CUSTOM.items():
        created = client.post("/api/v2/ticketing/filters", headers=admin,
                              json={"name": name, "shared": True, "conditions": conditions})
        assert created.status_code == 201, created.get_json()
        filters[created.get_json()["data"]["id"]] = parse_definition(conditions)
    made = client.post("/api/v2/ticketing/filters", headers=admin,
                       json={"name": "profile", "shared": True, "conditions": PROFILE})
    profile_id = made.get_json()["data"]["id"]
    drained = lambda: outbox.backlog(svc.db)[0] == 0  # noqa: E731
    procs.wait_until(drained, 120, "the worker to drain the initial load", log)
    callers = [principals()[i] for i in (0, 1, 6, 8, 9, 11, 13)]

    # When every caller reads once (cells become warm), then a stream of changes is applied
    first = check_all(client, headers, truth, filters, profile_id, callers,
                      {"recomputed", "cache"})
    changes = stream(rng, truth, epoch_ms(NOW), streamed)
    post_events(client, service, changes)
    procs.wait_until(drained, 120, "the worker to drain the stream", log)

    # Then warm counts equal the oracle, and so do cold ones after Redis is emptied
    warm = check_all(client, headers, truth, filters, profile_id, callers, {"cache"})
    procs.stop(process)
    counter_store.flush()
    cold = check_all(client, headers, truth, filters, profile_id, callers,
                     {"recomputed", "cache"})
    with capsys.disabled():
        print(f"\nticket model: {len(events) + len(changes)} events, "
              f"{first + warm + cold} count calls compared with the oracle")
