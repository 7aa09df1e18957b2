"""A deleted filter stops being counted on every worker within one poll interval (issue 17 #7).

Two app instances over one database and one Redis stand for two gunicorn workers: each holds
its own filter catalog (tally.services.catalog), as each process does.
"""
from __future__ import annotations

import pytest

from tally.services.catalog import TTL_SECONDS, catalog_ttl

FILTERS = "/api/v2/ticketing/filters"
COUNT = "/api/v2/ticketing/ticket/count?type=agent&module=ticketing"
VIP = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}
POLL_INTERVAL = 2  # shorter than the catalog's own TTL_SECONDS, so the bound is the poll's


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workers(make_app):
    """Two apps ("workers") whose filter catalogs run on a clock the test moves."""
    apps = [make_app(POLL_INTERVAL=POLL_INTERVAL) for _ in range(2)]
    ticks = Ticks()
    for app in apps:
        app.extensions["tally"].filter_catalog.monotonic = ticks
    return [app.test_client() for app in apps], ticks


def test_the_catalog_trusts_its_copy_for_at_most_one_poll_interval():
    assert catalog_ttl(30) == TTL_SECONDS
    assert catalog_ttl(POLL_INTERVAL) == POLL_INTERVAL < TTL_SECONDS


def test_a_filter_deleted_on_one_worker_is_a_422_on_the_other_by_the_next_poll(workers,
                                                                               headers):
    (one, other), ticks = workers
    alice = headers("alice", roles=("ticket_agent",))
    fid = one.post(FILTERS, json={"name": "VIP", "conditions": VIP},
                   headers=alice).get_json()["data"]["id"]
    body = {"filterIds": ["all", fid]}
    for client in (one, other):  # both workers resolve it, and remember it
        assert client.post(COUNT, json=body, headers=alice).status_code == 200
        assert client.post(COUNT, json=body, headers=alice).status_code == 200
    assert one.delete(f"{FILTERS}/{fid}", headers=alice).status_code == 200
    gone = one.post(COUNT, json=body, headers=alice)
    assert gone.status_code == 422  # at once where it was deleted
    ticks.now += POLL_INTERVAL  # the client's next poll, on the other worker
    elsewhere = other.post(COUNT, json=body, headers=alice)
    assert elsewhere.status_code == 422, elsewhere.get_json()
    assert elsewhere.get_json()["error"]["details"] == {"invalidIds": [fid]}
