"""Contract §2: a ticket_service token may post events but not count (issue 17 #8)."""
from __future__ import annotations

import uuid

import pytest

from tests.support.api import API, BODIES, COUNT, error_of

BADGE = API + "/ticket/notification/count"
READ = API + "/ticket/notification/read"
EVENTS = API + "/events"


@pytest.mark.parametrize("call", [
    ("get", BADGE, None), ("get", BADGE + "?view=minimal", None),
    ("post", COUNT.replace("template", "agent"), {"filterIds": ["all"]}),
    ("post", COUNT, {"filterIds": ["all"]}),
    ("post", COUNT.replace("template", "user"), {"filterIds": ["all"]}),
    ("post", READ, {"all": True}), ("get", API + "/ticket/notification/stream", None),
])
def test_a_service_token_may_post_events_but_not_count(client, headers, call):
    service = headers(user="svc", roles=("ticket_service",))
    method, url, body = call
    response = getattr(client, method)(url, json=body, headers=service) if body else \
        getattr(client, method)(url, headers=service)
    error_of(response, 403, "FORBIDDEN")
    event = dict(BODIES[EVENTS]["events"][0], eventId=str(uuid.uuid4()))
    assert client.post(EVENTS, json={"events": [event]}, headers=service).status_code == 202


def test_a_service_token_with_a_counting_role_counts_as_that_role(client, headers):
    agent_view = COUNT.replace("template", "agent")
    with_user = headers(user="svc", roles=("ticket_service", "ticket_user"))
    error_of(client.post(agent_view, json={"filterIds": ["all"]}, headers=with_user), 403,
             "FORBIDDEN")  # the user role's views, not an admin's
    assert client.post(COUNT, json={"filterIds": ["all"]}, headers=with_user).status_code == 200
    with_admin = headers(user="svc", roles=("ticket_service", "ticket_admin"))
    assert client.post(agent_view, json={"filterIds": ["all"]},
                       headers=with_admin).status_code == 200
