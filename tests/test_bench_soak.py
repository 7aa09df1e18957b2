"""`make soak` end to end at a tiny size, so the driver cannot rot: two simulated days through a
real redis-server and worker process on SQLite, every scheduled job run, one row per day."""
from __future__ import annotations

import pytest

from bench import soak

TINY = ["--db", "sqlite", "--days", "2", "--tickets-per-day", "24", "--ticks-per-day", "4",
        "--agents", "5", "--teams", "2", "--requesters", "10", "--filters-per-day", "3",
        "--filter-days", "1", "--readers-per-tick", "2", "--seed", "3"]


@pytest.mark.slow
def test_a_two_day_soak_reports_each_day_and_a_verdict_per_figure(tmp_path):
    args = soak.parse(TINY)
    days: list[soak.DayRow] = []

    rows, driver = soak.soak("sqlite", args, tmp_path, days.append)
    text = soak.report("sqlite", args, rows, driver)

    assert [row.day for row in rows] == [1, 2] and days == rows
    assert [row.verified for row in rows] == ["sample", "full"]  # the last day: every group
    for row in rows:
        assert row.drift == 0
        assert row.events > 0 and row.live_tickets > 0 and row.predicates > 0
        assert row.seen_events > 0 and row.redis_bytes > 0 and row.worker_cpu_s > 0
    # Every job of the scheduler's table ran, in simulated time: the sweep pruned rows applied
    # more than OUTBOX_RETENTION_SECONDS of simulated time ago, which the wall clock never saw.
    assert set(driver.jobs_enqueued) == {job.name for job in driver.table}
    assert rows[-1].outbox_rows < rows[-1].seen_events / 2
    assert driver.failed == 0
    assert "| 2 |" in text and "| verify drift | — | — | — | 0 throughout |" in text
    assert all(name in text for name, _value, _fmt in soak.FIGURES)


def test_growth_compares_the_middle_of_the_run_with_its_end():
    assert soak.growth([5, 10, 10, 10]) == (10, 10, 0.0)
    mid, end, change = soak.growth([1] * 10 + [2] * 8 + [3] * 2)
    assert (mid, end) == (1.0, 3.0) and change == pytest.approx(2.0)
    assert soak.growth([0, 0]) == (0, 0, 0.0)
