"""Operator maintenance of ticket cells: list, verify, repair, rebuild and invalidate."""
from __future__ import annotations

import pytest

from tally.core.clock import epoch_ms
from tally.services import maintenance
from tally.services.outbox import apply_pending
from tally.stores import keys
from tally.core.cells import Cell
from tally.stores.redis.counters import Install, Write
from tests.support.tickets import (NOW, as_events, ask, ingest, only_mp, post_events, sources,
                                   warm_world)

pytestmark = pytest.mark.both_databases

NOW_MS = epoch_ms(NOW)


@pytest.fixture
def world(app, client, headers, tenant_id):
    return warm_world(app, client, headers, tenant_id)


def test_key_helpers_name_the_mp_of_every_cell_key_and_nothing_else():
    t, mp, group = "t1", "abc123", keys.cell_group("abc123", "team:x|y")
    for key in (keys.mp_counts_key(t, mp), keys.mp_zset_key(t, mp, "asg:a:b"),
                keys.mp_negatives_key(t, mp, "all"), keys.group_snapshot_key(t, group),
                keys.group_lock_key(t, group)):
        assert keys.mp_of_key(t, key) == mp, key
    for key in (keys.mp_registry_key(t), keys.mp_version_key(t), keys.applied_key(t),
                keys.notification_counts_key(t, "mp:1"), keys.filter_mps_key(t, "3745"),
                keys.group_lock_key(t, keys.notification_group("u1"))):
        assert keys.mp_of_key(t, key) is None, key
    assert keys.origin_filter_of_key(t, keys.filter_mps_key(t, "3745")) == "3745"
    assert keys.origin_filter_of_key(t, keys.mp_counts_key(t, mp)) is None


def test_members_are_the_warm_plain_and_timed_cells(world, tenant_id):
    services, _ = world
    cells = services.ticket_counters.warm_cells(tenant_id)
    assert {c.mp.score_field for c in cells} == {None, "dueAt", "slaDueAt", "createdAt"}
    assert {"all", "team:t|3", "asg:auth0|u2", "req:u1"} <= {c.bucket for c in cells}
    assert None not in [services.ticket_counters.cell_value(tenant_id, c) for c in cells]


def test_verify_finds_no_drift_after_warm_cells_follow_changes(world, client, headers,
                                                               tenant_id):
    services, tickets = world
    live = [t for t in tickets if not t["deleted"]]
    bumped = [dict(t, version=2) for t in live[30:40]]  # a version alone moves timed members
    changed = [dict(t, version=3, status="open", teamId="t1", dueAt=NOW_MS - 1000)
               for t in live[:40]]
    ingest(services, client, headers, tenant_id, bumped)
    ingest(services, client, headers, tenant_id, changed)
    assert sources(ask(client, headers)) == {"cache"}
    drift = maintenance.verify(services, tenant_id)
    assert drift.lines == []


def test_verify_reports_plain_and_timed_drift_and_repair_fixes_it(world, tenant_id, raw):
    services, _ = world
    plain, timed = only_mp(raw, tenant_id, "3745"), only_mp(raw, tenant_id, "7440")
    true_count = int(raw.hget(keys.mp_counts_key(tenant_id, plain), "all"))
    # the cell was installed trimmed: what verify counts is its members and its floor
    members = raw.zcard(keys.mp_zset_key(tenant_id, timed, "all")) + int(
        raw.hget(keys.mp_counts_key(tenant_id, timed), "f:all") or 0)
    raw.hincrby(keys.mp_counts_key(tenant_id, plain), "all", 2)
    raw.zadd(keys.mp_zset_key(tenant_id, timed, "all"), {"ghost:1": NOW_MS})
    drift = maintenance.verify(services, tenant_id)
    assert sorted(drift.lines) == sorted([
        f"tickets mp={plain} bucket=all filters=3745: count redis={true_count + 2} "
        f"sql={true_count}",
        # Due Today (6358) and Overdue (7440): one MP (dueAt), two windows, both its origins
        f"tickets mp={timed} bucket=all filters=6358,7440: members (differ: ghost:1) "
        f"redis={members + 1} sql={members}"])
    repaired = maintenance.verify(services, tenant_id, repair=True)
    assert repaired.repaired == 2
    assert maintenance.verify(services, tenant_id).lines == []
    assert raw.hget(keys.mp_counts_key(tenant_id, plain), "all") == str(true_count)


def test_pending_removals_in_a_warm_timed_cell_are_drift(world, tenant_id, raw):
    services, _ = world
    timed = only_mp(raw, tenant_id, "7474")
    raw.hincrby(keys.mp_negatives_key(tenant_id, timed, "team:t1"), "T1:9", -1)
    (line,) = maintenance.verify(services, tenant_id).lines
    assert (f"mp={timed} bucket=team:t1 filters=7474,7475: members (pending removals: 1)"
            in line)  # SLA Breached and SLA At Risk: one MP (slaDueAt), two windows


def test_verify_skips_cells_while_ticket_deltas_are_in_flight(world, client, headers,
                                                              tenant_id, raw):
    services, tickets = world
    plain = only_mp(raw, tenant_id, "3745")
    raw.hincrby(keys.mp_counts_key(tenant_id, plain), "all", 1)
    ticket = next(t for t in tickets if not t["deleted"])
    status = "closed" if ticket["status"] != "closed" else "open"
    post_events(client, headers(user="svc", roles=("ticket_service",)),
                as_events([dict(ticket, version=2, status=status)]))
    assert maintenance.verify(services, tenant_id).lines == []
    assert raw.keys(keys.group_lock_key(tenant_id, "*")) == []  # every marker it took is gone
    apply_pending(services, tenant_id)
    assert len(maintenance.verify(services, tenant_id).lines) == 1


def test_verify_leaves_a_cell_whose_marker_another_rebuild_holds(world, tenant_id, raw):
    services, _ = world
    plain = only_mp(raw, tenant_id, "3745")
    group = keys.cell_group(plain, "all")
    raw.hincrby(keys.mp_counts_key(tenant_id, plain), "all", 1)
    token = services.counters.begin_rebuild(tenant_id, group)
    assert maintenance.verify(services, tenant_id, repair=True).lines == []
    assert raw.get(keys.group_lock_key(tenant_id, group)) == token
    services.counters.abort_rebuild(tenant_id, group, token)
    assert len(maintenance.verify(services, tenant_id).lines) == 1


def test_rebuild_recomputes_every_warm_cell_and_reports_progress(world, client, headers,
                                                                 tenant_id, raw):
    services, _ = world
    plain = only_mp(raw, tenant_id, "3745")
    before = ask(client, headers)
    raw.hincrby(keys.mp_counts_key(tenant_id, plain), "all", 3)
    cells = len(services.ticket_counters.warm_cells(tenant_id))
    lines: list[str] = []
    report = maintenance.rebuild(services, tenant_id, progress=lines.append, every=10)
    assert f"tickets: {cells} rebuilt, 0 busy" in report
    assert lines == [f"tickets: {n}/{cells} rebuilt" for n in range(10, cells, 10)]
    assert ask(client, headers) == before


def test_invalidate_a_filter_drops_its_mps_and_leaves_the_others(world, tenant_id, raw):
    services, _ = world
    dropped, kept = only_mp(raw, tenant_id, "3745"), only_mp(raw, tenant_id, "7440")
    removed = maintenance.invalidate(services, tenant_id, filter_id="3745")
    assert removed > 0
    left = raw.keys(keys.tenant_pattern(tenant_id))
    assert [k for k in left if keys.mp_of_key(tenant_id, k) == dropped] == []
    assert not raw.hexists(keys.mp_registry_key(tenant_id), dropped)
    assert raw.smembers(keys.filter_mps_key(tenant_id, "3745")) == set()
    assert raw.hexists(keys.mp_registry_key(tenant_id), kept)
    assert raw.hexists(keys.mp_counts_key(tenant_id, kept), "z:all")


def test_invalidate_a_filter_cancels_a_rebuild_begun_before_it(world, tenant_id, raw):
    services, _ = world
    plain = only_mp(raw, tenant_id, "3745")
    mp = services.ticket_counters.mp(tenant_id, plain)
    cell = Cell(mp, "team:t4")  # cold: nobody asked for team t4
    token, held, _ = services.ticket_counters.begin(tenant_id, [cell], NOW_MS)
    assert held == [cell]
    maintenance.invalidate(services, tenant_id, filter_id="3745")
    write = Write("hset", keys.mp_counts_key(tenant_id, plain), ("team:t4", 7))
    install = Install(keys.cell_group(*cell.id), [write], [])
    assert services.counters.install(tenant_id, token, install) is False
    assert not raw.exists(keys.mp_counts_key(tenant_id, plain))


def test_invalidate_the_tenant_drops_every_ticket_key_but_the_version(world, tenant_id, raw):
    services, _ = world
    version = raw.get(keys.mp_version_key(tenant_id))
    maintenance.invalidate(services, tenant_id)
    left = set(raw.keys(keys.tenant_pattern(tenant_id)))
    assert left == {keys.mp_version_key(tenant_id), keys.applied_key(tenant_id),
                    keys.watermark_key(tenant_id)}  # kept: dropped groups rebuild from SQL
    assert raw.get(keys.mp_version_key(tenant_id)) == version
    assert maintenance.verify(services, tenant_id).lines == []
    assert services.ticket_counters.warm_cells(tenant_id) == []
