"""The benchmark's verdict on a ratio target: yes, no, or unsure when the rounds disagree."""
from __future__ import annotations

from bench import report
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
