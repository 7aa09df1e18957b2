"""The chaos suite on a three-master Redis Cluster: invariant 1 under faults, counters sharded.

tests/chaos/test_chaos.py runs unchanged against a deployment whose counter store is the suite's
Redis Cluster (gunicorn, workers, scheduler and `tally cache …` all with TALLY_REDIS_CLUSTER=true)
and whose RQ queue is a standalone redis-server of its own; "FLUSHALL the counter Redis" empties
every master. SQLite, 1,500 events (the standalone runs send 3,000) over two tenants.
"""
from __future__ import annotations

import pytest

from tests.support.deployment import Cluster
from tests.chaos.test_chaos import (  # noqa: F401  (fixture and test collected here)
    svc, test_chaos_seed_counts_exact_after_faults)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def cluster(db_url, realms_file, tmp_path, counter_store):
    deployment = Cluster(db_url, realms_file, tmp_path,
                         counter_cluster_url=counter_store.url).start()
    yield deployment
    deployment.close()


@pytest.fixture
def events() -> int:
    return 1500
