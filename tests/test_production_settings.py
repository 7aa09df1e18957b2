"""Production settings: the PostgreSQL pool of each process, a Redis Cluster only ever for the
counters (RQ needs a standalone Redis), the access log's and /metrics' settings."""
from __future__ import annotations

import pytest

from tally.errors import ConfigError
from tally.settings import from_env
from tally.app import create_app

UNREACHED = "postgresql+psycopg://tally@127.0.0.1:1/tally"  # the engine connects on first use


def test_the_pool_settings_size_each_process_pool(realms_file, var_dir, redis_url):
    config = from_env({"TALLY_ENV": "test", "TALLY_DB_POOL_SIZE": "7",
                       "TALLY_DB_MAX_OVERFLOW": "3"})
    app = create_app(config, DATABASE_URL=UNREACHED, REDIS_URL=redis_url,
                     REALMS_FILE=realms_file, VAR_DIR=var_dir)
    pool = app.extensions["tally"].db.engine.pool
    assert (pool.size(), pool._max_overflow) == (7, 3)


@pytest.mark.parametrize("name, value", [("TALLY_DB_POOL_SIZE", "0"),
                                         ("TALLY_DB_MAX_OVERFLOW", "-1"),
                                         ("TALLY_DB_POOL_SIZE", "many"),
                                         ("TALLY_LOG_SLOW_MS", "-1"), ("TALLY_LOG_SLOW_MS", "fast"),
                                         ("TALLY_LOG_SAMPLE_RATE", "1.5"),
                                         ("TALLY_LOG_SAMPLE_RATE", "-0.1"),
                                         ("TALLY_LOG_SAMPLE_RATE", "nan"),
                                         ("TALLY_METRICS_FOLD_SECONDS", "0"),
                                         ("TALLY_METRICS_FOLD_SECONDS", "inf"),
                                         ("TALLY_METRICS_FOLD_SECONDS", "soon")])
def test_a_bad_pool_log_or_metrics_setting_stops_the_app_naming_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        from_env({name: value})


def test_a_counter_cluster_without_a_queue_redis_stops_the_app():
    with pytest.raises(ConfigError, match="TALLY_QUEUE_URL must name a standalone Redis"):
        from_env({"TALLY_REDIS_CLUSTER": "true", "TALLY_REDIS_URL": "redis://counters:6379"})
    cluster = from_env({"TALLY_REDIS_CLUSTER": "true", "TALLY_REDIS_URL": "redis://counters:6379",
                        "TALLY_QUEUE_URL": "redis://queue:6379/0"})
    assert cluster.REDIS_CLUSTER and cluster.queue_url == "redis://queue:6379/0"


def test_log_and_metrics_settings_are_read():
    config = from_env({"TALLY_LOG_SLOW_MS": "250", "TALLY_LOG_SAMPLE_RATE": "0",
                       "TALLY_METRICS_FOLD_SECONDS": "2.5"})
    assert (config.LOG_SLOW_MS, config.LOG_SAMPLE_RATE, config.METRICS_FOLD_SECONDS) == \
        (250, 0.0, 2.5)
    assert (from_env({}).LOG_SLOW_MS, from_env({}).LOG_SAMPLE_RATE) == (500, 0.01)


def test_the_min_watermark_wait_is_read_and_refused_below_zero():
    assert from_env({}).MIN_WATERMARK_WAIT_MS == 250
    assert from_env({"TALLY_MIN_WATERMARK_WAIT_MS": "0"}).MIN_WATERMARK_WAIT_MS == 0
    with pytest.raises(ConfigError, match="TALLY_MIN_WATERMARK_WAIT_MS"):
        from_env({"TALLY_MIN_WATERMARK_WAIT_MS": "-5"})
