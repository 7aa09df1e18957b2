"""`make soak` end to end at a tiny size, so the driver cannot rot: two simulated days through a
real redis-server and two worker processes (apply, maintenance) on SQLite, every scheduled job
run, one row per day."""
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
        assert row.seen_events > 0 and row.redis_bytes > 0
        # Each worker's CPU is its own: the apply worker applied the events, the maintenance
        # worker ran the scheduled jobs.
        assert row.apply_cpu_s > 0 and row.maintenance_cpu_s > 0
    # Every job of the scheduler's table ran, in simulated time: the sweep pruned rows applied
    # more than OUTBOX_RETENTION_SECONDS of simulated time ago, which the wall clock never saw.
    assert set(driver.jobs_enqueued) == {job.name for job in driver.table}
    assert rows[-1].outbox_rows < rows[-1].seen_events / 2
    assert driver.failed == 0
    assert "| 2 |" in text and "| verify drift | — | — | — | 0 throughout |" in text
    assert all(name in text for name, _value, _fmt in soak.FIGURES)


def test_growth_reads_a_least_squares_line_through_the_last_half():
    flat = soak.growth([5, 10, 10, 10, 10])  # the first day is warm-up, outside the fit
    assert flat == (10, 10, 0.0, 0.0) and flat.verdict == "flat"

    line = soak.growth([0, 0, 0, 100, 110, 120, 130])  # days 4-7: +10 a day, exactly
    assert (line.mid, line.end) == pytest.approx((100, 130))
    assert line.change == pytest.approx(0.3) and line.margin == pytest.approx(0)
    assert line.verdict == "GROWS"

    # One noisy last day after flat ones: the line tilts, and its margin says that the tilt is
    # within the days' scatter, so the verdict is neither flat nor grows.
    noisy = soak.growth([100, 100, 100, 100, 100, 100, 100, 100, 100, 130])
    assert 0.05 < noisy.change < 0.3 and noisy.change - noisy.margin < 0.05
    assert noisy.verdict == "unsure (within noise)"

    falling = soak.growth([100, 90, 80, 70, 60])
    assert falling.change < 0 and falling.verdict == "flat"
    assert soak.growth([0, 0]) == (0, 0, 0.0, 0.0)
