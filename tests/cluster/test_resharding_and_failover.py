"""A tenant's slot moves to another master, and its master fails over, while tally keeps working.

Each test gets a cluster of its own (they change its shape). Moving the slot is done as
`redis-cli --cluster reshard` does it: SETSLOT IMPORTING/MIGRATING, MIGRATE a few keys at a time,
SETSLOT NODE. Meanwhile events are ingested and applied and counts read: single-key reads follow
ASK, scripts whose keys are split between the two masters get TRYAGAIN (the apply is retried, the
ticket read answers from SQL), and after the move the client follows MOVED. The failover kills
the master with SIGKILL: reads answer from SQL until its replica takes over, then from Redis.
Either way, once the outbox drains, every counter equals SQL.
"""
from __future__ import annotations

import random
import threading
import time

import pytest
import redis

from tally.services import maintenance
from tally.errors import TallyError
from tally.services import outbox
from tally.stores import keys
from tally.stores.sql import notification_counts as sql_counts
from tally.stores.redis.counters import Install, Write
from tally.stores.redis.cluster import scan_tenant
from tests.support.redis_cluster import RedisClusterProcesses
from tests.support import degraded as h
from tests.support import events as b
from tests.support.counter_store import CounterStore

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

USERS = ("ann", "bob", "cy")
MIGRATE_BATCH = 3  # keys per MIGRATE: the slot is split between two masters for many steps
DRAIN_ATTEMPTS = 200
RETRY_PAUSE_S = 0.05  # between refused attempts: 200 of them span 10 s, not a few ms


@pytest.fixture
def cluster():
    # The replicas take over whatever their data's age (the test decides when they may).
    own = RedisClusterProcesses(masters=3, replicas=3,
                                extra_args=("--cluster-replica-validity-factor", "0")).start()
    yield own
    own.stop()


@pytest.fixture
def counter_store(cluster, redis_url) -> CounterStore:
    return CounterStore(url=cluster.url, queue_url=redis_url, cluster=True)


@pytest.fixture
def world(make_app, headers, tenant_id):
    app = make_app()
    tokens = {user: headers(user) for user in USERS}
    tokens.update(admin=headers("boss", h.ADMIN), service=headers(roles=h.SERVICE))
    return app, app.test_client(), tokens


def slot_of(app, tenant: str) -> int:
    return app.extensions["tally"].counters.client.keyslot(keys.tenant_prefix(tenant))


def apply_all(svc, tenant: str) -> None:
    """Apply every pending row, retrying while the counter store refuses (TRYAGAIN, failover)."""
    for _ in range(DRAIN_ATTEMPTS):
        try:
            outbox.apply_pending(svc, tenant)
        except TallyError:
            time.sleep(RETRY_PAUSE_S)
            continue
        if outbox.backlog(svc.db)[0] == 0:
            return
    raise AssertionError("the outbox did not drain")


def assert_counters_equal_sql(svc, tenant: str) -> None:
    """ann's badge (warm) and every other warm badge equal SQL; so do all warm ticket cells."""
    for user in USERS:
        with svc.db.snapshot() as session:
            truth = sql_counts.notification_counts(session, tenant, user)
        cached = svc.counters.read_notifications(tenant, user)
        assert cached == truth or (cached is None and user != "ann"), user
    assert maintenance.verify(svc, tenant).lines == []


class Traffic(threading.Thread):
    """Ingest, apply and read in a loop until stopped; counts each read's X-Count-Source."""

    def __init__(self, app, tokens, tenant: str, seed: int):
        super().__init__(daemon=True)
        self.app, self.tokens, self.tenant = app, tokens, tenant
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.sources: dict[str, int] = {}
        self.errors: list[str] = []
        self.rounds = 0

    def run(self) -> None:
        client, svc = self.app.test_client(), self.app.extensions["tally"]
        while not self.stop.is_set():
            n = self.rounds = self.rounds + 1
            events = [b.created(f"m-{n}-{i}", self.rng.choice(USERS)) for i in range(3)]
            events += [b.read(self.rng.choice(USERS), [f"m-{n - 1}-0", f"m-{n - 1}-1"]),
                       b.ticket(f"t-{n % 7}", n, priority=self.rng.choice(["critical", "low"]))]
            posted = client.post(h.EVENTS, json={"events": events},
                                 headers=self.tokens["service"])
            if posted.status_code != 202:
                self.errors.append(f"events {posted.status_code}")
            try:
                outbox.apply_pending(svc, self.tenant)
            except TallyError:
                pass  # refused mid-move (TRYAGAIN); the rows stay pending
            user = self.rng.choice(USERS)
            for path, kwargs in ((h.NOTIFICATIONS, {}), (h.COUNT, {"json": h.ASK})):
                method = client.get if not kwargs else client.post
                answer = method(path, headers=self.tokens["admin" if kwargs else user], **kwargs)
                if answer.status_code != 200:
                    self.errors.append(f"{path} {answer.status_code}: {answer.get_json()}")
                source = answer.headers.get("X-Count-Source", "none")
                self.sources[source] = self.sources.get(source, 0) + 1


def test_a_tenant_slot_moving_to_another_master_keeps_counts_exact(world, cluster, tenant_id,
                                                                   capsys):
    app, client, tokens = world
    svc = app.extensions["tally"]
    # Given warm counters of a tenant on its master
    h.assert_answers(client, tokens, h.EMPTY, "recomputed")
    assert client.post(h.EVENTS, json={"events": h.first_events()},
                       headers=tokens["service"]).status_code == 202
    apply_all(svc, tenant_id)
    h.assert_answers(client, tokens, h.AFTER_FIRST, "cache")
    for user in USERS[1:]:
        assert client.get(h.NOTIFICATIONS, headers=tokens[user]).status_code == 200
    slot = slot_of(app, tenant_id)
    source, _ = cluster.serving(slot)
    target = next(node for node in cluster.masters if node is not source)

    # When the slot starts moving and ann's badge hash moves first
    cluster.begin_move(slot, source, target)
    badge = keys.notification_counts_key(tenant_id, "ann")
    cluster.migrate(slot, source, target, 1, names=(badge,))
    # Then the source redirects with ASK, and the app follows it to the badge's new master
    with pytest.raises(redis.exceptions.AskError):
        cluster.command(source, "HGETALL", badge)
    answer = client.get(h.NOTIFICATIONS, headers=tokens["ann"])
    assert answer.headers["X-Count-Source"] == "cache"
    assert h.notification_numbers(answer) == h.AFTER_FIRST["ann"]
    # ... and a scan of the tenant finds its keys on both masters
    on_src = set(cluster.command(source, "CLUSTER", "GETKEYSINSLOT", slot, 10_000))
    on_dst = set(cluster.command(target, "CLUSTER", "GETKEYSINSLOT", slot, 10_000))
    assert badge in on_dst and on_src
    assert set(scan_tenant(svc.counters.client, tenant_id)) == on_src | on_dst

    # When the rest moves a few keys at a time while events are ingested, applied and read
    traffic = Traffic(app, tokens, tenant_id, seed=707)
    traffic.start()
    moved = 1
    try:
        while batch := cluster.migrate(slot, source, target, MIGRATE_BATCH):
            moved += batch
            rounds = traffic.rounds
            cluster.wait(lambda: traffic.rounds > rounds or not traffic.is_alive(), "traffic")
        cluster.end_move(slot, target)
        rounds = traffic.rounds
        cluster.wait(lambda: traffic.rounds > rounds + 3 or not traffic.is_alive(), "traffic")
    finally:
        traffic.stop.set()
        traffic.join(60)

    with capsys.disabled():
        print(f"\nslot move: {moved} keys in batches of {MIGRATE_BATCH}, {traffic.rounds} rounds "
              f"of ingest/apply/read meanwhile, reads by source {traffic.sources}")
    # Then every answer was a 200, the tenant lives on the new master, and counts are exact
    assert traffic.errors == [] and traffic.sources.get("cache", 0) > 0, traffic.sources
    assert cluster.serving(slot)[0] is target
    assert cluster.command(source, "CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    apply_all(svc, tenant_id)
    assert client.get(h.NOTIFICATIONS, headers=tokens["ann"]).headers["X-Count-Source"] == "cache"
    assert client.post(h.COUNT, json=h.ASK,
                       headers=tokens["admin"]).headers["X-Count-Source"] == "cache"
    assert_counters_equal_sql(svc, tenant_id)


def two_installs(tenant: str) -> tuple[str, str, list[Install]]:
    """ann's group, its hash, and two installs of it: the first with snapshot id 7."""
    group = keys.notification_group("ann")
    hash_key = keys.notification_counts_key(tenant, "ann")
    return group, hash_key, [Install(group, [Write("hset", hash_key, ("total", 3))], [7]),
                             Install(group, [Write("hset", hash_key, ("unread", 2))], [])]


def test_installs_sent_to_a_master_the_slot_has_left_follow_moved(app, cluster, tenant_id):
    counters = app.extensions["tally"].counters
    group, hash_key, plans = two_installs(tenant_id)
    # Given a rebuild begun, then the tenant's slot moved away behind the client's back
    token = counters.begin_rebuild(tenant_id, group)
    slot = counters.client.keyslot(hash_key)
    source, _ = cluster.serving(slot)
    cluster.move(slot, source, next(n for n in cluster.masters if n is not source))
    # When the installs are pipelined to the master the client still believes in
    installed = counters.install_many(tenant_id, token, plans)
    # Then the first, answered MOVED, is sent again and installs; the second finds the marker
    # cleared by the first (as any install after its rebuild ended does)
    assert installed == [True, False]
    assert counters.client.hgetall(hash_key) == {"total": "3"}
    assert counters.client.smembers(keys.group_snapshot_key(tenant_id, group)) == {"7"}


def test_a_pipeline_to_a_dead_master_reaches_its_successor(app, cluster, tenant_id):
    counters = app.extensions["tally"].counters
    group, hash_key, plans = two_installs(tenant_id)
    # Given a rebuild begun and replicated, then its master killed and its replica elected
    token = counters.begin_rebuild(tenant_id, group)
    master, replicas = cluster.serving(counters.client.keyslot(hash_key))
    assert cluster.command(master, "WAIT", 1, 5000) == 1
    master.kill()
    cluster.wait_promoted(replicas[0])
    cluster.wait_ready(cluster.live())
    # When the installs are pipelined to the dead master the client still believes in, then
    # redis-py's cluster pipeline follows the failover itself (the refused connection refreshes
    # its slot map and the commands are sent again): they reach the new master
    assert counters.install_many(tenant_id, token, plans) == [True, False]
    assert counters.client.hgetall(hash_key) == {"total": "3"}


def test_a_master_failing_over_to_its_replica_loses_no_count(world, cluster, tenant_id, redis_url):
    app, client, tokens = world
    svc = app.extensions["tally"]
    # Given warm counters, replicated to the replica of the tenant's master
    h.assert_answers(client, tokens, h.EMPTY, "recomputed")
    assert client.post(h.EVENTS, json={"events": h.first_events()},
                       headers=tokens["service"]).status_code == 202
    assert h.drain(app, redis_url)
    h.assert_answers(client, tokens, h.AFTER_FIRST, "cache")
    master, replicas = cluster.serving(slot_of(app, tenant_id))
    cluster.command(replicas[0], "CONFIG", "SET", "cluster-replica-no-failover", "yes")  # for now
    assert cluster.command(master, "WAIT", 1, 5000) == 1

    # When the master is SIGKILLed: reads answer from SQL, events are still accepted
    master.kill()
    h.assert_answers(client, tokens, h.AFTER_FIRST, "sql")
    accepted = client.post(h.EVENTS, json={"events": h.second_events()},
                           headers=tokens["service"])
    assert accepted.status_code == 202
    assert outbox.backlog(svc.db)[0] > 0  # owed, durable in SQL

    # When its replica is allowed to take over (the cluster elects it)
    cluster.command(replicas[0], "CONFIG", "SET", "cluster-replica-no-failover", "no")
    cluster.wait_promoted(replicas[0])  # not merely "ok": that holds until the kill is noticed
    cluster.wait_ready(cluster.live())
    # Then the client follows the new master: the owed deltas apply once, reads are warm again
    apply_all(svc, tenant_id)
    h.assert_answers(client, tokens, h.AFTER_SECOND, "cache")
    assert_counters_equal_sql(svc, tenant_id)
