"""The benchmark's table and rounds: ratios to the bare Flask app, verdicts yes/no/unsure."""
from __future__ import annotations

import pytest

from bench import calls, report, wrk
from bench.memory import Memory
from bench.wrk import Paired, WrkResult


def _rounds(*rates: float) -> list[WrkResult]:
    return [WrkResult(int(rate * 2), 2.0, 5.0, 20.0, 0) for rate in rates]


def _row(endpoint: list[float], baseline: list[float]) -> str:
    result = report.DbResult("sqlite")
    result.loads.append(report.LoadRow("badge", Paired(_rounds(*endpoint), _rounds(*baseline)),
                                       0.75))
    return report.table([result]).splitlines()[2]


def test_rounds_that_agree_give_yes_or_no():
    assert _row([2_400, 2_400, 2_300, 2_400], [3_000, 3_000, 3_000, 3_000]).endswith(
        "| 0.80 (0.79–0.80) | ≥ 0.75 | yes |")
    assert _row([2_000, 2_100, 2_000, 2_000], [3_000, 3_000, 3_000, 3_000]).endswith(
        "| 0.67 (0.67–0.68) | ≥ 0.75 | **no** |")


def test_one_disturbed_round_does_not_decide_and_rounds_that_disagree_are_unsure():
    steady_but_one = _row([2_000, 2_000, 2_000, 2_000, 1_000], [3_000, 1_500, 3_000, 3_000, 3_000])
    assert steady_but_one.endswith("| 0.67 (0.67–0.67) | ≥ 0.75 | **no** |")
    split = _row([2_400, 2_000, 2_400, 2_000], [3_000, 3_000, 3_000, 3_000])
    assert split.endswith("| 0.73 (0.67–0.80) | ≥ 0.75 | unsure |")
    assert Paired(_rounds(1, 1), _rounds(3_000, 2_400)).rounds_text() == \
        "E 1 / B 3,000; E 1 / B 2,400"


def test_every_ratio_divides_by_the_bare_flask_app_and_the_header_says_so():
    result = report.DbResult("sqlite")
    result.loads.append(report.LoadRow("raw WSGI", Paired(_rounds(9_000), _rounds(6_000)), None))
    result.loads.append(report.LoadRow("badge", Paired(_rounds(2_700), _rounds(3_000)),
                                       report.TARGET_BADGE))
    header, _rule, raw, badge = report.table([result]).splitlines()[:4]

    assert "÷ bare Flask app" in header
    assert "9,000 req/s (bare Flask 6,000)" in raw and raw.endswith("| 1.50 (1.50–1.50) | — | — |")
    assert badge.endswith("| 0.90 (0.90–0.90) | ≥ 0.90 | yes |")


def test_rounds_alternate_between_the_endpoint_and_the_bare_app_with_the_same_wrk_load():
    endpoint = wrk.Side("http://127.0.0.1:1", [wrk.HttpCall("GET", "/count", {})])
    bare = wrk.Side("http://127.0.0.1:2", endpoint.calls)
    sent = []

    def runner(base_url, calls, seconds, connections, threads):
        sent.append((base_url, seconds, connections, threads))
        return WrkResult(3_000 if base_url == bare.base_url else 1_500, 1.0, 1.0, 2.0, 0)

    paired = wrk.alternate(endpoint, bare, wrk.Load(rounds=3, seconds=2.0), runner)

    assert [(url[-1], seconds) for url, seconds, _c, _t in sent] == \
        [("1", 1), ("2", 1), ("2", 2.0), ("1", 2.0), ("1", 2.0), ("2", 2.0), ("2", 2.0), ("1", 2.0)]
    assert {(c, t) for _u, _s, c, t in sent} == {(wrk.CONNECTIONS, wrk.THREADS)} == {(32, 2)}
    assert paired.ratios == [0.5, 0.5, 0.5]


def test_the_in_app_baseline_row_refuses_a_size_its_route_cannot_answer():
    call = wrk.HttpCall("GET", "/count", {"Authorization": "Bearer x"})
    assert calls.baseline_calls([call], 300)[0].headers == call.headers
    with pytest.raises(ValueError):
        calls.baseline_calls([call], 0)


def test_the_memory_row_divides_the_tenants_bytes_by_its_live_tickets():
    result = report.DbResult("postgres")
    result.memory = Memory(tickets=1_000_000, bytes=61_000_000, keys=900, cells=120,
                           members=400_000, floor=600_000, zset_bytes=40_000_000, folded=0)
    (row,) = report.table([result]).splitlines()[2:3]
    assert row.startswith("| Redis bytes per live ticket at 1,000,000 tickets")
    assert "| 61 B (61,000,000 B in 900 keys)" in row and row.endswith("| ≤ 100 B | yes |")
    result.memory = Memory(1_000, 540_000, 10, 3, 5_000, 0, 500_000, 0)
    assert report.table([result]).splitlines()[2].endswith("| ≤ 100 B | **no** |")


def test_the_me_agents_row_divides_many_by_few():
    def run(events_per_second, per_cpu, predicates):
        return {"events_per_second": events_per_second, "events_per_worker_cpu_second": per_cpu,
                "materialised_predicates": predicates}

    result = report.DbResult("sqlite", worker="skipped")
    result.me_agents = [(10, run(2_000, 2_500, 60)), (1_000, run(1_900, 2_000, 60))]
    row = report.table([result]).splitlines()[-1]
    assert row.startswith("| events applied per second, 1,000 ÷ 10 agents who opened a $me")
    assert "1,000 agents: 1,900 events/s (2,000 per worker CPU second, 60 predicates)" in row
    assert row.endswith("| 0.95 (per CPU second 0.80) | ≥ 0.90 | yes |")
    result.me_agents[1] = (1_000, "failed (exit 1): boom")
    assert report.table([result]).splitlines()[-1].endswith("| ≥ 0.90 | — |")
