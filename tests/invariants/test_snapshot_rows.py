"""Regression: an outbox row a rebuild already counted is skipped for every change it holds.

A ticket outbox row holds many changes, so several of them can land in one cell. apply.lua used
to ask the cell's snapshot set once per change: the first removed the id and was skipped, the
next ones found it gone and were applied, counting the row again (the chaos suite found it as
drift in busy cells such as `all` whenever a cold read installed a cell while rows were pending).
The deltas now net a row's changes per cell, and apply.lua asks once per event and cell.
"""
from __future__ import annotations

import uuid

import pytest

from tally.core.deltas import outbox_delta
from tally.core.predicates import Materialized
from tally.services.outbox import apply_pending
from tally.stores import keys
from tally.stores.redis.counters import Install, RedisCounters, Write
from tests.support.tickets import ask, only_mp, values, warm_world
from tests.support import events as b

pytestmark = pytest.mark.both_databases

T = str(uuid.uuid4())
EVERY = Materialized({"all": []})  # every live ticket


def two_new_tickets(outbox_id: int):
    """One row whose two changes both add to EVERY's cell `all`."""
    changes = [{"before": None, "after": {"id": f"t{i}", "version": 1, "deleted": False,
                                          "teamId": None, "assigneeId": None,
                                          "requesterId": "r1", "isSupportRequest": False}}
               for i in range(2)]
    return outbox_delta(outbox_id, {"kind": "ticket", "at": 1, "changes": changes}, [EVERY])


def test_a_counted_row_is_skipped_for_every_change_it_holds(raw):
    counters = RedisCounters(raw)
    key, group = keys.mp_counts_key(T, EVERY.id), keys.cell_group(EVERY.id, "all")
    token = counters.begin_rebuild(T, group)
    # The rebuild's snapshot already counted row 1 (both of its changes): all = 2
    assert counters.install(T, token, Install(group, [Write("hset", key, ("all", 2))], [1]))
    counters.apply(T, [two_new_tickets(1)], now_ms=1)
    assert raw.hget(key, "all") == "2"
    # ... while a row the snapshot did not count adds both of its changes
    counters.apply(T, [two_new_tickets(2)], now_ms=2)
    assert raw.hget(key, "all") == "4"


def test_a_cold_read_while_a_multi_ticket_row_is_pending_counts_it_once(app, client, headers,
                                                                        tenant_id, raw):
    # Given warm cells, and one pending row with two new tickets in the same cells
    services, _ = warm_world(app, client, headers, tenant_id, n=20)
    service = headers(user="svc", roles=("ticket_service",))
    batch = [b.ticket(f"new-{i}", 1, status="open", priority="critical") for i in range(2)]
    assert client.post(b.EVENTS, json={"events": batch}, headers=service).status_code == 202
    # When the counters are emptied and read cold before the worker applies the row
    raw.flushall()
    cold = ask(client, headers)
    apply_pending(services, tenant_id)
    # Then the warm cells hold the row once: the same answers as a fresh cold read
    warm = ask(client, headers)
    assert {source for source, _ in warm} == {"cache"}
    assert values(warm) == values(cold)
    plain = only_mp(raw, tenant_id, "3745")
    assert raw.exists(keys.mp_counts_key(tenant_id, plain))
    raw.flushall()
    assert values(ask(client, headers)) == values(cold)
