"""Notification streams on a Redis Cluster: the fan-out's pub/sub goes through the cluster client.

Two tests of tests/http/test_stream.py run here unchanged on the cluster (apply in a worker's
place, and mark-read in the web process): classic PUBLISH reaches every node, so the hub's one
subscription, on whichever node the cluster client picks, hears every tenant's changes.
"""
from __future__ import annotations

import pytest

from tests.http.test_stream import (  # noqa: F401  (fixtures and tests collected here)
    app, open_stream, seeded, test_a_created_notification_is_pushed_with_the_new_counts,
    test_mark_read_in_the_web_process_reaches_the_stream)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
