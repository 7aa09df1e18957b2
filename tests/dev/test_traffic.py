"""`tally demo --traffic`: its events are accepted, applied by a worker, and move the counts
exactly as they say; a retry resends the same eventId, a refusal stops the run."""
from __future__ import annotations

import random

import pytest

from tally.dev import keys as devkeys
from tally.dev.demo import DEMO_SERVICE, DEMO_TENANT, demo_token, provision_demo
from tally.dev.traffic import Traffic, send
from tests.support.degraded import drain

PREFIX = "/api/v2/ticketing"


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-tenantid": DEMO_TENANT,
            "realmname": devkeys.DEV_REALM, "Accept": "application/json"}


def _counts(client, agent: dict[str, str]) -> dict[str, int]:
    badge = client.get(f"{PREFIX}/ticket/notification/count", headers=agent).get_json()
    sidebar = client.post(f"{PREFIX}/ticket/count?type=template&module=ticketing",
                          json={"filterIds": ["all"]}, headers=agent).get_json()
    summary = sidebar["data"]["summary"]
    return {"open": summary["totalOpen"], "closed": summary["totalClosed"],
            "unread": badge["data"]["unread"]}


def test_the_traffic_moves_the_badge_and_sidebar_as_its_events_say(make_app, redis_url):
    app = make_app()
    svc = app.extensions["tally"]
    provision_demo(svc, progress=lambda _line: None, tickets=40)
    client = app.test_client()
    agent = _headers(demo_token(svc))
    service = _headers(demo_token(svc, user=DEMO_SERVICE, roles=("ticket_service",), teams=()))
    before = _counts(client, agent)
    traffic = Traffic(rng=random.Random(7))
    lines: list[str] = []

    def post(batch):
        return client.post(f"{PREFIX}/events", json=batch, headers=service).status_code

    # When 60 events are sent as `tally demo --traffic` sends them, and a worker applies them
    assert send(traffic, post, 60, rate=0, progress=lines.append, every=20) == 60
    assert drain(app, redis_url)
    # Then every kind of step ran, progress was printed, and the counts moved by what was sent
    assert all(count > 0 for count in traffic.sent.values()), traffic.sent
    assert [line.split(" (")[0] for line in lines] == [
        "traffic: 20 events sent", "traffic: 40 events sent", "traffic: 60 events sent"]
    expected = traffic.expected()
    after = _counts(client, agent)
    assert {name: after[name] - before[name] for name in after} == expected
    assert expected["open"] + expected["closed"] > 0 and expected["unread"] > 0


def test_a_failed_post_is_retried_with_the_same_event_and_a_refusal_stops_the_run():
    seen: list[str] = []
    answers = iter([OSError("connection refused"), 503, 202, 202])

    def flaky(batch):
        seen.append(batch["events"][0]["eventId"])
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    naps: list[float] = []
    assert send(Traffic(rng=random.Random(1)), flaky, 2, rate=0, sleep=naps.append) == 2
    assert seen[0] == seen[1] == seen[2] != seen[3]  # two retries of the first event
    assert naps == [0.2, 0.4]  # backing off
    with pytest.raises(RuntimeError, match="HTTP 400"):
        send(Traffic(), lambda _batch: 400, 1, rate=0, sleep=naps.append)
