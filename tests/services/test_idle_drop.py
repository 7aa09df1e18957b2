"""Forgetting what nobody reads: idle MPs dropped on a real redis-server, against the oracle.

Every caller of tests/support/tickets.CALLERS reads at NOW (so each MP is recorded as read then);
the drop runs at LATER with MP_IDLE_SECONDS of IDLE, so whatever was not read again is idle. Each
interleaving (drop vs apply, vs rebuild, vs read) is forced at a fixed point by wrapping the one
store call it happens around, and the answers that follow must equal the oracle and verify must
find no drift.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from tally.core.clock import epoch_ms
from tally.core.filters import SYSTEM_FILTERS
from tally.services import maintenance
from tally.services.outbox import apply_pending
from tally.services.ticket_maintenance import drop_idle
from tally.settings import from_env
from tally.stores import keys
from tally.stores.redis.cells import read_stamp
from tests.support import oracle
from tests.support.tickets import (CALLERS, NOW, SYSTEM_IDS, as_events, ask, post_events, sources,
                                   values, warm_world)
from tally.workers import jobs, schedule

pytestmark = pytest.mark.both_databases

NOW_MS = epoch_ms(NOW)
IDLE_S = 3600
IDLE = IDLE_S * 1000
LATER = NOW_MS + 2 * IDLE  # every MP last read at NOW is idle then
DEFINITIONS = {spec.id: spec.definition for spec in SYSTEM_FILTERS if spec.id in SYSTEM_IDS}


@pytest.fixture
def world(app, client, headers, tenant_id):
    """Every caller's cells warm after one ask at NOW (services, tickets)."""
    return warm_world(app, client, headers, tenant_id)


def truth(tickets: list[dict], now_ms: int = NOW_MS) -> list[dict]:
    """The oracle's answers for every caller of `ask`, in its order."""
    out = []
    for principal, view_type in CALLERS:
        counts, summary = oracle.count(tickets, principal, view_type, DEFINITIONS, None, now_ms,
                                       "Asia/Calcutta", False)
        out.append({"counts": counts, "summary": summary})
    return out


def change(tickets: list[dict], n: int = 40) -> list[dict]:
    """New versions of `n` live tickets (moved into open, team t1, overdue), merged into
    `tickets`; returns them."""
    live = [t for t in tickets if not t["deleted"]][:n]
    changed = [dict(t, version=t["version"] + 1, status="open", teamId="t1",
                    dueAt=NOW_MS - 1000) for t in live]
    by_id = {t["id"]: t for t in changed}
    tickets[:] = [by_id.get(t["id"], t) for t in tickets]
    return changed


def post(client, headers, changed: list[dict]) -> None:
    """Accept the events (SQL, outbox) without applying them."""
    post_events(client, headers(user="svc", roles=("ticket_service",)), as_events(changed))


def registered(raw, tenant: str) -> set[str]:
    return set(raw.hkeys(keys.mp_registry_key(tenant)))


def keys_of(raw, tenant: str, mp_ids: set[str]) -> list[str]:
    """Every key left that belongs to one of `mp_ids`, or names one (origin sets, read record)."""
    left = [k for k in raw.keys(keys.tenant_pattern(tenant)) if keys.mp_of_key(tenant, k) in mp_ids]
    left += [k for k in raw.keys(keys.origin_sets_pattern(tenant))
             if raw.smembers(k) & mp_ids]
    left += [f"mpread:{m}" for m in raw.hkeys(keys.mp_reads_key(tenant)) if m in mp_ids]
    return left


def spy_apply(services, monkeypatch, before_first=None) -> list[set[str]]:
    """Per apply call (refused ones too), the MP ids its deltas touch; `before_first()` runs
    once, after the first call was computed and before it reaches Redis."""
    real, calls = services.counters.apply, []

    def apply(tenant, deltas, now_ms, guards=()):
        deltas = list(deltas)
        calls.append({cell[0] for d in deltas if d.cells for cell in d.cells.touched()})
        if len(calls) == 1 and before_first is not None:
            before_first()
        return real(tenant, deltas, now_ms, guards)

    monkeypatch.setattr(services.counters, "apply", apply)
    return calls


def test_mps_unread_for_longer_than_the_setting_are_dropped_and_the_recently_read_kept(
        world, client, headers, tenant_id, raw, monkeypatch):
    services, tickets = world
    version = int(raw.get(keys.mp_version_key(tenant_id)))
    # The admin reads Open again two idle periods later; nobody else reads anything
    services.clock = lambda: NOW + timedelta(milliseconds=2 * IDLE)
    response = client.post("/api/v2/ticketing/ticket/count?type=template&module=ticketing",
                           json={"filterIds": ["3745"], "timezone": "UTC"},
                           headers=headers(user=CALLERS[0][0].user_id, roles=CALLERS[0][0].roles,
                                           teams=CALLERS[0][0].teams))
    assert response.headers["X-Count-Source"] == "cache"
    services.clock = lambda: NOW
    reads = raw.hgetall(keys.mp_reads_key(tenant_id))
    kept = {mp for mp, at in reads.items() if int(at) == read_stamp(LATER)}
    idle = registered(raw, tenant_id) - kept
    assert kept and idle and {int(reads[mp]) for mp in idle} == {read_stamp(NOW_MS)}

    report = drop_idle(services, tenant_id, LATER + 1, IDLE)

    assert (report.registered, report.dropped, report.outcomes["read"]) == (
        len(kept) + len(idle), len(idle), len(kept))
    assert registered(raw, tenant_id) == kept
    assert int(raw.get(keys.mp_version_key(tenant_id))) == version + len(idle)
    assert keys_of(raw, tenant_id, idle) == []
    assert all(raw.hexists(keys.mp_counts_key(tenant_id, mp), "all") or
               raw.hexists(keys.mp_counts_key(tenant_id, mp), "z:all") for mp in kept)
    assert maintenance.verify(services, tenant_id).lines == []
    # The worker evaluates the kept MPs only
    calls = spy_apply(services, monkeypatch)
    post(client, headers, change(tickets))
    apply_pending(services, tenant_id)
    assert calls and set().union(*calls) <= kept and set().union(*calls)
    assert maintenance.verify(services, tenant_id).lines == []
    # A read of dropped MPs recomputes them, answers right and registers them again
    answers = ask(client, headers)
    assert "recomputed" in sources(answers) and values(answers) == truth(tickets)
    assert registered(raw, tenant_id) == kept | idle
    assert sources(ask(client, headers)) == {"cache"}


def test_nothing_is_dropped_while_everything_was_read_within_the_setting(world, tenant_id, raw):
    services, _ = world
    before = registered(raw, tenant_id)
    report = drop_idle(services, tenant_id, NOW_MS + IDLE - 1, IDLE)
    assert report.outcomes == {"read": len(before)} and registered(raw, tenant_id) == before


def test_an_apply_computed_before_a_drop_is_refused_and_recomputed_without_the_mps(
        world, client, headers, tenant_id, raw, monkeypatch):
    services, tickets = world
    mps = registered(raw, tenant_id)
    dropped = []
    calls = spy_apply(services, monkeypatch, lambda: dropped.append(
        drop_idle(services, tenant_id, LATER, IDLE).dropped))
    post(client, headers, change(tickets))
    apply_pending(services, tenant_id)
    # The first call was computed against the MPs, refused (mpver), and recomputed against none
    assert dropped == [len(mps)] and calls[0] and calls[0] <= mps
    assert len(calls) >= 2 and all(touched == set() for touched in calls[1:])
    assert registered(raw, tenant_id) == set()
    answers = ask(client, headers)
    assert sources(answers) == {"recomputed"} and values(answers) == truth(tickets)
    assert maintenance.verify(services, tenant_id).lines == []


def test_an_apply_computed_before_a_drop_and_a_read_that_registers_again_counts_once(
        world, client, headers, tenant_id, raw, monkeypatch):
    services, tickets = world

    def drop_then_read() -> None:
        drop_idle(services, tenant_id, LATER, IDLE)
        answers = ask(client, headers)  # SQL has the change; the apply has not reached Redis
        assert sources(answers) == {"recomputed"} and values(answers) == truth(tickets)

    calls = spy_apply(services, monkeypatch, drop_then_read)
    post(client, headers, change(tickets))
    apply_pending(services, tenant_id)
    assert len(calls) == 2 and calls[0] == calls[1]  # refused once, then applied against the same
    answers = ask(client, headers)
    assert sources(answers) == {"cache"} and values(answers) == truth(tickets)
    assert maintenance.verify(services, tenant_id).lines == []


def test_a_drop_leaves_an_mp_alone_while_a_rebuild_of_it_is_between_begin_and_install(
        world, client, headers, tenant_id, raw, monkeypatch):
    services, tickets = world
    maintenance.invalidate(services, tenant_id)  # every cell cold: the next ask rebuilds
    real, reports = services.counters.applied_among, []

    def applied_among(tenant, ids):  # rebuild_cells: after the snapshot, before the install
        if not reports:
            # reads were recorded at NOW, so only the rebuild markers can keep these MPs
            reports.append(drop_idle(services, tenant_id, LATER, IDLE))
        return real(tenant, ids)

    monkeypatch.setattr(services.counters, "applied_among", applied_among)
    answers = ask(client, headers)
    (report,) = reports
    assert report.registered > 0 and report.outcomes == {"rebuilding": report.registered}
    assert len(registered(raw, tenant_id)) > report.registered  # the other callers' MPs
    assert values(answers) == truth(tickets)
    assert sources(ask(client, headers)) == {"cache"}
    post(client, headers, change(tickets))
    apply_pending(services, tenant_id)
    answers = ask(client, headers)
    assert sources(answers) == {"cache"} and values(answers) == truth(tickets)
    assert maintenance.verify(services, tenant_id).lines == []
    # With the rebuilds done, every MP (read at NOW only) goes
    mps = registered(raw, tenant_id)
    assert drop_idle(services, tenant_id, LATER, IDLE).outcomes == {"dropped": len(mps)}
    assert keys_of(raw, tenant_id, mps) == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_read_next_to_a_drop_answers_from_all_cells_or_recomputes(
        world, client, headers, tenant_id, raw, monkeypatch, when):
    services, tickets = world
    post(client, headers, change(tickets))
    apply_pending(services, tenant_id)
    counters = services.ticket_counters
    real, drops = counters.read_sums, []

    def read_sums(sums, windows, now_ms):
        if when == "before" and not drops:
            drops.append(drop_idle(services, tenant_id, LATER, IDLE).dropped)
        answer = real(sums, windows, now_ms)
        if when == "after" and not drops:
            drops.append(drop_idle(services, tenant_id, LATER, IDLE).dropped)
        return answer

    monkeypatch.setattr(counters, "read_sums", read_sums)
    first = ask(client, headers)
    assert drops[0] > 0
    assert sources(first[:1]) == {"recomputed" if when == "before" else "cache"}
    assert values(first) == truth(tickets)
    second = ask(client, headers)  # after: the admin's cells were dropped behind its answer
    assert values(second) == truth(tickets)
    assert sources(second) == {"cache"} if when == "before" else sources(second[:1]) == {
        "recomputed"}
    assert sources(ask(client, headers)) == {"cache"}
    assert maintenance.verify(services, tenant_id).lines == []


def test_the_scheduled_job_drops_by_the_services_clock_and_zero_turns_it_off(
        make_app, headers, tenant_id, raw):
    app = make_app(MP_IDLE_SECONDS=IDLE_S)
    services, _ = warm_world(app, app.test_client(), headers, tenant_id)
    mps = registered(raw, tenant_id)
    with app.app_context():
        result = jobs.drop_idle()
        assert (result["dropped"], result["read"], result["tenants"]) == (0, len(mps), 1)
        services.clock = lambda: NOW + timedelta(milliseconds=2 * IDLE)
        result = jobs.drop_idle()
        assert (result["dropped"], result["registered"]) == (len(mps), len(mps))
        assert registered(raw, tenant_id) == set()
        services.config.MP_IDLE_SECONDS = 0
        assert jobs.drop_idle() == {"skipped": True}


def test_the_schedule_runs_the_drop_24_times_per_idle_period_and_the_setting_parses():
    config = from_env({"TALLY_ENV": "test", "TALLY_MP_IDLE_SECONDS": "86400"})
    assert config.MP_IDLE_SECONDS == 86400
    every = {p.name: p.every for p in schedule.table(config)}
    assert every["drop-idle"] == 3600
    config.MP_IDLE_SECONDS = 0
    assert "drop-idle" not in {p.name for p in schedule.table(config)}
    assert from_env({"TALLY_ENV": "production"}).MP_IDLE_SECONDS == 7 * 86400


def test_forget_idle_on_the_command_line_drops_what_is_idle_now(make_app, headers, tenant_id, raw):
    app = make_app(MP_IDLE_SECONDS=0)
    services, _ = warm_world(app, app.test_client(), headers, tenant_id)
    mps = registered(raw, tenant_id)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["tally", "cache", "forget-idle"])
    assert refused.exit_code == 2 and "MP_IDLE_SECONDS is 0" in refused.output
    kept = runner.invoke(args=["tally", "cache", "forget-idle", "--idle-seconds", str(IDLE_S)])
    assert kept.exit_code == 0, kept.output
    assert f"0 of {len(mps)} predicates dropped (kept: {len(mps)} read)" in kept.output
    services.clock = lambda: NOW + timedelta(milliseconds=2 * IDLE)
    gone = runner.invoke(args=["tally", "cache", "forget-idle", "--tenant", tenant_id,
                               "--idle-seconds", str(IDLE_S)])
    assert gone.output == f"tenant {tenant_id}: {len(mps)} of {len(mps)} predicates dropped\n"
    assert registered(raw, tenant_id) == set()
