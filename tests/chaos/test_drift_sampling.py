"""The scheduled sampling verify: random warm groups compared with SQL, drift logged and counted."""
from __future__ import annotations

import logging
import random
import uuid
from datetime import timedelta

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job

from tally.errors import ConfigError
from tally.settings import Test, from_env
from tally import jobs as names
from tally.services import maintenance, notifications
from tally.dev.launcher import RedisProcess, free_port
from tally.services.tenants import create_tenant
from tally.stores import keys
from tests.support import factories
from tests.support.tokens import REALM
from tests.support.tickets import only_mp, warm_world
from tests.support.factories import MIX
from tally.workers import jobs, schedule

pytestmark = pytest.mark.both_databases

LOGGER = "tally.services.maintenance"


@pytest.fixture(scope="module")
def queue_server():
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
def queue_redis(queue_server):
    connection = redis.Redis.from_url(queue_server.url)
    connection.flushall()
    yield connection
    connection.close()


@pytest.fixture
def app(make_app, queue_server):
    """The app with its queue in a Redis of its own, so the metric's home is visible."""
    return make_app(QUEUE_URL=queue_server.url, VERIFY_SAMPLE_SIZE=10_000)


def warm_users(services, tenant: str, users: list[str], warm: int) -> None:
    """Give every user the MIX of notifications; the first `warm` users' counters are warm."""
    for number, user in enumerate(users):
        factories.notifications(services.db, tenant, user, MIX)
        if number < warm:
            assert notifications.count(services, tenant, user).source == "recomputed"


def drift_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno == logging.WARNING]


def test_the_job_logs_each_drifted_group_counts_it_in_the_queue_redis_and_repairs_nothing(
        app, client, headers, tenant_id, raw, queue_redis, caplog):
    # Given warm ticket cells and warm users, one user's hash and one ticket cell drifted
    services, _ = warm_world(app, client, headers, tenant_id)
    warm_users(services, tenant_id, ["u1", "u2", "u3"], warm=3)
    raw.hset(keys.notification_counts_key(tenant_id, "u2"), "unread", 9)
    plain = only_mp(raw, tenant_id, "3745")
    cell = keys.mp_counts_key(tenant_id, plain)
    truth = int(raw.hget(cell, "all"))
    raw.hset(cell, "all", truth + 2)
    # When the scheduled job runs twice through RQ
    queue = Queue(names.MAINTENANCE_QUEUE, connection=queue_redis)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for run in range(2):
            names.enqueue_unique(queue_redis, names.MAINTENANCE_QUEUE, names.VERIFY_SAMPLE,
                                 job_id=f"verify-{run}")
            with app.app_context():
                assert SimpleWorker([queue], connection=queue_redis).work(burst=True)
    # Then each run logged both groups with tenant, group and values, and counted them
    lines = drift_lines(caplog)
    assert len(lines) == 4, lines
    assert sum(f"tenant {tenant_id} user u2: unread redis=9 sql=4" in line
               for line in lines) == 2
    assert sum(f"tenant {tenant_id} tickets mp={plain} bucket=all filters=3745: count "
               f"redis={truth + 2} sql={truth}" in line for line in lines) == 2
    assert queue_redis.get(keys.DRIFT_FOUND_KEY) == b"4"
    assert raw.get(keys.DRIFT_FOUND_KEY) is None  # the metric is not a counter-store key
    # ... and repaired nothing: operators do
    assert raw.hget(keys.notification_counts_key(tenant_id, "u2"), "unread") == "9"
    assert raw.hget(cell, "all") == str(truth + 2)


def test_a_sample_takes_at_most_size_warm_groups_per_tenant(app, raw, caplog):
    # Given a tenant whose 12 warm users all drifted, and one with 3 of 5 users warm, no drift
    services = app.extensions["tally"]
    drifted, clean = sorted(str(uuid.uuid4()) for _ in range(2))
    for tenant in (drifted, clean):
        create_tenant(services.db, tenant, "t", REALM)
    many = [f"u{i:02d}" for i in range(12)]
    warm_users(services, drifted, many, warm=12)
    warm_users(services, clean, ["a", "b", "c", "d", "e"], warm=3)
    for user in many:
        raw.hset(keys.notification_counts_key(drifted, user), "total", 99)
    # When two samples of 4 groups per tenant are taken with different seeds
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        one = maintenance.sample_verify(services, 4, random.Random(1))
        two = maintenance.sample_verify(services, 4, random.Random(2))
    # Then each visited both tenants, compared 4 + 3 groups, and found 4 drifted groups
    for report in (one, two):
        assert (report.tenants, report.sampled, len(report.drifted)) == (2, 7, 4)
        assert {d.tenant for d in report.drifted} == {drifted}
    assert len(drift_lines(caplog)) == 8
    assert {d.member for d in one.drifted} != {d.member for d in two.drifted}


def test_with_the_counter_store_down_the_job_skips_and_counts_nothing(make_app, queue_server,
                                                                      queue_redis, tenant_id,
                                                                      caplog):
    app = make_app(QUEUE_URL=queue_server.url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context(), caplog.at_level(logging.WARNING, logger="tally.workers.jobs"):
        assert jobs.verify_sample() == {"skipped": True}
    assert "sampling verify skipped, counter store down" in caplog.text
    assert queue_redis.get(keys.DRIFT_FOUND_KEY) is None


def test_the_schedule_enqueues_the_sampling_verify_at_its_configured_interval(queue_redis):
    config = Test()
    config.VERIFY_INTERVAL_SECONDS = 60
    config.SEEN_EVENTS_PRUNE_INTERVAL_SECONDS = 0  # tests/services/test_redelivery_horizon.py
    config.TRIM_INTERVAL_SECONDS = 0
    config.MP_IDLE_SECONDS = 0
    table = schedule.table(config)
    assert [(p.name, p.path, p.every) for p in table] == [
        ("sweep", names.SWEEP, None), ("verify", names.VERIFY_SAMPLE, 60)]
    for now in (1000.0, 1005.0, 1019.9, 1020.0):  # verify slots 16, 16, 16, 17
        schedule.tick(queue_redis, now, 5, 60, table)
    funcs = [job.func_name for job in Queue(names.MAINTENANCE_QUEUE, connection=queue_redis).jobs]
    assert funcs.count(names.VERIFY_SAMPLE) == 2
    assert funcs.count(names.SWEEP) == 4
    config.VERIFY_INTERVAL_SECONDS = 0
    assert schedule.table(config) == schedule.PERIODIC


def test_the_verify_settings_come_from_the_environment():
    config = from_env({"TALLY_ENV": "test", "TALLY_VERIFY_INTERVAL_SECONDS": "30",
                       "TALLY_VERIFY_SAMPLE_SIZE": "5"})
    assert (config.VERIFY_INTERVAL_SECONDS, config.VERIFY_SAMPLE_SIZE) == (30, 5)
    default = from_env({"TALLY_ENV": "production"})
    assert (default.VERIFY_INTERVAL_SECONDS, default.VERIFY_SAMPLE_SIZE) == (300, 20)
    with pytest.raises(ConfigError, match="TALLY_VERIFY_SAMPLE_SIZE"):
        from_env({"TALLY_VERIFY_SAMPLE_SIZE": "many"})


def test_workers_take_the_sampling_verify_before_a_backlog_of_apply_jobs(
        app, queue_redis, tenant_id):
    # Given a backlog of apply jobs, then a sampling verify
    for high in range(1, 4):
        names.enqueue_apply(queue_redis, tenant_id, high)
    names.enqueue_unique(queue_redis, names.MAINTENANCE_QUEUE, names.VERIFY_SAMPLE,
                         job_id="verify-now")
    # When a worker takes the queues in their configured order
    queues = [Queue(name, connection=queue_redis) for name in names.QUEUES]
    with app.app_context():
        assert SimpleWorker(queues, connection=queue_redis).work(burst=True)
    # Then the verify ran first
    done = [Job.fetch(job_id, connection=queue_redis)
            for job_id in ["verify-now"] + [names.apply_job_id(tenant_id, h) for h in range(1, 4)]]
    assert all(job.get_status() == "finished" for job in done)
    assert done[0].ended_at <= min(job.started_at for job in done[1:])


def test_the_schedule_runs_the_trim_job_at_its_interval_and_the_job_trims_every_tenant(
        app, client, headers, tenant_id, raw, queue_redis):
    config = Test()
    config.VERIFY_INTERVAL_SECONDS, config.TRIM_INTERVAL_SECONDS = 0, 60
    assert ("trim", names.TRIM, 60) in [(p.name, p.path, p.every) for p in schedule.table(config)]
    assert from_env({"TALLY_ENV": "test", "TALLY_TRIM_INTERVAL_SECONDS": "0"}
                    ).TRIM_INTERVAL_SECONDS == 0
    assert from_env({"TALLY_ENV": "production"}).TRIM_INTERVAL_SECONDS == 3600
    # Given warm timed cells, a day later (the clock the job reads is the app's)
    services, _ = warm_world(app, client, headers, tenant_id)
    later = services.clock() + timedelta(days=1)
    services.clock = lambda: later
    with app.app_context():
        done = jobs.trim_cells()
    assert done["skipped"] is False and done["cells"] > 0 and done["folded"] > 0
    assert maintenance.verify(services, tenant_id).lines == []
