"""The benchmark's table says "unsure" instead of yes/no when the machine changed speed mid-row."""
from __future__ import annotations

from bench import report
from bench.wrk import Paired, WrkResult


def _rounds(*rates: float) -> list[WrkResult]:
    return [WrkResult(int(rate * 5), 5.0, 5.0, 20.0, 0) for rate in rates]


def _row(endpoint: list[float], baseline: list[float]) -> str:
    result = report.DbResult("sqlite")
    result.loads.append(report.LoadRow("badge", Paired(_rounds(*endpoint), _rounds(*baseline)),
                                       0.75))
    return report.table([result]).splitlines()[2]


def test_a_steady_baseline_gives_a_verdict_from_the_median_ratio():
    assert _row([2_400, 2_200, 2_300], [3_000, 2_900, 3_100]).endswith("| 0.76 | ≥ 0.75 | yes |")
    assert _row([2_000, 2_000, 2_000], [3_000, 2_900, 3_100]).endswith(
        "| 0.67 | ≥ 0.75 | **no** |")


def test_a_baseline_that_changed_speed_mid_row_makes_the_verdict_unsure():
    row = _row([2_070, 2_100, 2_000], [1_400, 1_420, 3_400])
    assert "| 1.48 | ≥ 0.75 | unsure: baseline rounds 1,400–3,400 req/s |" in row
    assert Paired(_rounds(1, 1), _rounds(3_000, 2_400)).rounds_text() == \
        "E 1 / B 3,000; E 1 / B 2,400"
