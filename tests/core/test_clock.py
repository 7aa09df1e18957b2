"""tally.core.clock.iso_ms: every timestamp on the wire, formatted by hand, as strftime would."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from tally.core.clock import iso_ms


def test_iso_ms_matches_strftime_with_milliseconds_and_z_for_any_moment():
    rng = random.Random(20261206)
    start = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for _ in range(5000):
        moment = start + timedelta(microseconds=rng.randrange(0, 200 * 365 * 86_400 * 10**6))
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        assert iso_ms(moment) == expected


def test_iso_ms_converts_to_utc_and_truncates_to_the_millisecond():
    india = timezone(timedelta(hours=5, minutes=30))
    assert iso_ms(datetime(2026, 3, 8, 5, 0, 0, 999999, tzinfo=india)) == \
        "2026-03-07T23:30:00.999Z"
    assert iso_ms(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)) == \
        "2026-01-02T03:04:05.006Z"
