"""Read-your-writes on a Redis Cluster: tests of tests/http/test_watermarks.py run here unchanged.

The applied watermark lives under the tenant's hash tag, so sums.lua and the badge's pipeline read
it in the same slot as the counts; the worker's PUBLISH reaches the web process's fan-out whichever
node its subscription is on; a flush of every master loses the watermark with the counters.
"""
from __future__ import annotations

import pytest

from tests.http.test_watermarks import (  # noqa: F401  (fixtures and tests collected here)
    app, env, headers, test_a_waiting_count_is_woken_by_a_real_worker_applying_the_write,
    test_concurrent_writers_in_one_tenant_each_read_their_own_writes,
    test_with_the_worker_stopped_a_count_at_the_writes_watermark_comes_from_sql,
    test_worker_sigkill_and_counter_flush_never_make_the_watermark_overstate, worker)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
