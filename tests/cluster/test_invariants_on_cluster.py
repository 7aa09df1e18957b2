"""Invariant 1 on a three-master Redis Cluster: the pipeline tests and the randomised ticket model.

The tests of tests/invariants run here unchanged: tests/cluster/conftest.py swaps their counter
store for the cluster (apps, worker processes and the "Redis emptied" step all use it), with RQ
on the standalone test redis-server and SQLite as the database. The pipeline tests send the same
504 and 576 events as on a standalone Redis; the ticket model is smaller (600 tickets, 500
changes and their redeliveries, against 2,000 and 1,500 there).
"""
from __future__ import annotations

import pytest

from tests.invariants.test_pipeline import (  # noqa: F401  (fixtures and tests collected here)
    env, svc, test_a_sigkilled_worker_loses_and_doubles_nothing_after_restart_and_sweep,
    test_counters_equal_sql_after_random_events_with_redelivery, worker_log)
from tests.invariants.test_ticket_model import (  # noqa: F401
    test_pipeline_counts_equal_the_oracle_warm_and_cold, worker)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def model_size() -> tuple[int, int]:
    """A smaller ticket model than tests/invariants' (2,000 + 1,500): 600 tickets, 500 changes."""
    return 600, 500
