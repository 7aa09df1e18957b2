"""The apply and install scripts on a real redis-server: once-only, all-or-nothing, commuting."""
from __future__ import annotations

import itertools
import uuid

import pytest
import redis

from tally.core.model import Principal
from tally.core.predicates import Materialized
from tally.core.filters import SYSTEM_BY_ID
from tally.services.container import build_caches
from tally.errors import GuardChanged, RebuildBusy, StoreUnavailable
from tally.stores import keys
from tally.core.cells import UNTRIMMED, Cell, CellDeltas, NotificationDelta, OutboxDelta
from tally.stores.redis.counters import Install, RedisCounters, Write
from tally.stores.redis.cells import Sums, TicketCounters, WarmSums

T = str(uuid.uuid4())
H = keys.notification_counts_key(T, "u1")


@pytest.fixture
def counters(raw):
    return RedisCounters(raw)


def bump(outbox_id: int, user: str = "u1", n: int = 1) -> OutboxDelta:
    """A notification row adding n to the user's total (lastUpdated stays 0: never written)."""
    return OutboxDelta(outbox_id, notification=NotificationDelta(user, {"total": n}, 0))


def group(user: str = "u1") -> str:
    return keys.notification_group(user)


def warm_hash(raw, value=0):
    raw.hset(H, "total", value)


def test_each_outbox_id_is_applied_once(counters, raw):
    warm_hash(raw)
    first = counters.apply(T, [bump(1), bump(2)], now_ms=1)
    again = counters.apply(T, [bump(2), bump(3)], now_ms=2)
    assert (first.applied, first.duplicates) == (2, 0)
    assert (again.applied, again.duplicates) == (1, 1)
    assert raw.hgetall(H) == {"total": "3"}


def test_cold_group_is_skipped_but_the_event_is_marked_applied(counters, raw):
    result = counters.apply(T, [bump(1)], now_ms=1)
    assert result.applied == 1
    assert not raw.exists(H)
    assert raw.zscore(keys.applied_key(T), "1") == 1


def test_warm_field_gates_one_cell_of_a_hash(counters, raw):
    key = keys.mp_counts_key(T, "mp1")
    raw.hset(key, "a", 5)
    cells = CellDeltas(plain={("mp1", "a"): 1, ("mp1", "b"): 1})
    counters.apply(T, [OutboxDelta(1, cells=cells)], now_ms=1)
    assert raw.hgetall(key) == {"a": "6"}


def test_rebuild_marker_refuses_the_whole_batch(counters, raw):
    warm_hash(raw)
    token = counters.begin_rebuild(T, group("u2"))
    assert token
    with pytest.raises(RebuildBusy):
        counters.apply(T, [bump(1, "u1"), bump(2, "u2")], now_ms=1)
    assert raw.hget(H, "total") == "0"
    assert not raw.exists(keys.applied_key(T))
    assert counters.begin_rebuild(T, group("u2")) is None  # one rebuild at a time


def test_guard_mismatch_refuses_the_batch(counters, raw):
    warm_hash(raw)
    version = keys.tenant_prefix(T) + "ver"
    raw.set(version, "7")
    with pytest.raises(GuardChanged):
        counters.apply(T, [bump(1)], now_ms=1, guards=[(version, "6")])
    assert counters.apply(T, [bump(1)], now_ms=1, guards=[(version, "7")]).applied == 1
    assert raw.hget(H, "total") == "1"


def test_install_counts_snapshot_ids_once_and_clears_the_marker(counters, raw):
    counters.apply(T, [bump(1)], now_ms=1)  # cold: skipped, marked applied
    token = counters.begin_rebuild(T, group())
    # The snapshot counted outbox rows 1 (already applied) and 2 (not yet applied).
    assert counters.install(T, token, Install(group(), [Write("hset", H, ("total", 2))], [1, 2]))
    assert raw.smembers(keys.group_snapshot_key(T, group())) == {"2"}
    assert not raw.exists(keys.group_lock_key(T, group()))
    counters.apply(T, [bump(2), bump(3)], now_ms=2)
    assert raw.hget(H, "total") == "3"  # 2 was in the snapshot; only 3 adds


def test_install_with_a_lost_marker_writes_nothing(counters, raw):
    token = counters.begin_rebuild(T, group())
    raw.delete(keys.group_lock_key(T, group()))  # expired
    assert not counters.install(T, token, Install(group(), [Write("hset", H, ("total", 9))], []))
    assert not raw.exists(H)


def test_last_updated_is_kept_at_its_maximum(counters, raw):
    warm_hash(raw)
    late, early = (OutboxDelta(i, notification=NotificationDelta("u1", {}, at))
                   for i, at in ((1, 70), (2, 50)))
    counters.apply(T, [late, early], now_ms=1)
    assert raw.hgetall(H) == {"total": "0", "lu": "70"}


ZSET, NEGATIVES = keys.mp_zset_key(T, "mp1", "all"), keys.mp_negatives_key(T, "mp1", "all")


def zmoves(outbox_id, moves):
    return OutboxDelta(outbox_id, cells=CellDeltas(timed={("mp1", "all"): moves}))


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_zmoves_commute_in_any_order(counters, raw, order):
    raw.hset(keys.mp_counts_key(T, "mp1"), "z:all", 1)
    history = [zmoves(1, [("t:1", 10, 1)]),                      # created at v1
               zmoves(2, [("t:1", 10, -1), ("t:2", 20, 1)]),     # v1 -> v2
               zmoves(3, [("t:2", 20, -1), ("t:3", 30, 1)])]     # v2 -> v3
    for i in order:
        counters.apply(T, [history[i]], now_ms=1)
    assert raw.zrange(ZSET, 0, -1, withscores=True) == [("t:3", 30.0)]
    assert not raw.exists(NEGATIVES)


AGENT = Principal("agent-1", T, "dev", frozenset({"ticket_agent"}), ("t1", "t2"))
PLAIN = Materialized.of(SYSTEM_BY_ID["3745"].definition, AGENT)  # Open: one integer per bucket
TIMED = Materialized.of(SYSTEM_BY_ID["7474"].definition, AGENT)  # SLA Breached: scored by slaDueAt
TERMS = (("b1", 1), ("b2", 1), ("b3", -1))
READ_AT = 3_600_000  # epoch ms of the reads (a whole minute)


@pytest.fixture
def warm_sums(raw):
    """PLAIN and TIMED warm over TERMS' buckets; TIMED read twice (two windows, one MP)."""
    raw.hset(keys.mp_counts_key(T, PLAIN.id), mapping={"b1": 5, "b2": 7, "b3": 2})
    raw.hset(keys.mp_counts_key(T, TIMED.id),
             mapping={"z:b1": UNTRIMMED, "z:b2": UNTRIMMED, "z:b3": UNTRIMMED})
    members = {"b1": {"t:1": 10, "t:2": 150, "t:3": 250}, "b2": {"t:4": 100}, "b3": {"t:2": 150}}
    for bucket, scored in members.items():
        raw.zadd(keys.mp_zset_key(T, TIMED.id, bucket), scored)
    return Sums.of(T, [(PLAIN, TERMS), (TIMED, TERMS), (TIMED, TERMS)])


def test_sums_read_each_count_with_its_signs_and_window(raw, warm_sums):
    reader = TicketCounters(RedisCounters(raw), build_caches({}).specs)
    # [-inf, 100): t:1 in b1; [100, 200): t:2 in b1, t:4 in b2, minus t:2 in b3
    assert reader.read_sums(warm_sums, [(float("-inf"), 100), (100, 200)], READ_AT) == WarmSums(
        0, [10, 1, 1])  # no applied watermark stored: it claims nothing
    raw.set(keys.watermark_key(T), 7)
    assert reader.read_sums(warm_sums, [(0, 1000), (150, 151)], READ_AT) == WarmSums(7, [10, 3, 0])


def test_the_applied_watermark_only_rises_and_is_read_with_the_badge(counters, raw):
    assert counters.read_badge(T, "u1") == (0, None)
    pubsub = raw.pubsub()
    pubsub.subscribe(keys.watermark_channel(T))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert counters.advance_watermark(T, 5) == 5
    assert counters.advance_watermark(T, 3) == 5  # a stale apply never lowers it
    assert pubsub.get_message(timeout=5)["data"] == "5"
    assert pubsub.get_message(timeout=0.2) is None  # only a rise is published
    pubsub.close()
    raw.hset(keys.notification_counts_key(T, "u1"), mapping={"total": 2, "unread": 1, "lu": 0})
    watermark, counts = counters.read_badge(T, "u1")
    assert watermark == 5 and (counts.total, counts.unread) == (2, 1)
    assert counters.applied_watermark(T) == 5


def test_sums_read_a_counts_hash_shared_by_two_entries_once(raw, warm_sums):
    reader = TicketCounters(RedisCounters(raw), build_caches({}).specs)
    reader.read_sums(warm_sums, [(0, 1), (0, 1)], READ_AT)  # loads the script
    raw.config_resetstat()
    reader.read_sums(warm_sums, [(0, 1), (0, 1)], READ_AT)
    stats = raw.info("commandstats")
    assert stats["cmdstat_hmget"]["calls"] == 2  # PLAIN's hash and TIMED's, not TIMED's twice
    assert stats["cmdstat_zcount"]["calls"] == 2 * len(TERMS)
    assert "cmdstat_hget" not in stats and "cmdstat_hset" not in stats  # recorded already


def test_a_warm_read_records_its_mps_once_a_minute_per_plan(raw, warm_sums):
    reader = TicketCounters(RedisCounters(raw), build_caches({}).specs)
    reads = keys.mp_reads_key(T)
    reader.read_sums(warm_sums, [(0, 1), (0, 1)], READ_AT + 59_999)
    end = READ_AT + 60_000  # the end of the minute read in
    assert raw.hgetall(reads) == {PLAIN.id: str(end), TIMED.id: str(end)}
    raw.config_resetstat()
    reader.read_sums(warm_sums, [(0, 1), (0, 1)], READ_AT + 1)  # same minute: not recorded
    # another plan (or process), same minute
    other = Sums.of(T, [(PLAIN, TERMS), (TIMED, TERMS), (TIMED, TERMS)])
    reader.read_sums(other, [(0, 1), (0, 1)], READ_AT + 2)
    stats = raw.info("commandstats")
    assert stats["cmdstat_hget"]["calls"] == 2 and "cmdstat_hset" not in stats
    reader.read_sums(warm_sums, [(0, 1), (0, 1)], READ_AT + 60_000)  # the next minute
    assert set(raw.hvals(reads)) == {str(end + 60_000)}


def test_a_cold_read_records_nothing(raw, warm_sums):
    raw.hdel(keys.mp_counts_key(T, PLAIN.id), "b2")
    reader = TicketCounters(RedisCounters(raw), build_caches({}).specs)
    assert reader.read_sums(warm_sums, [(0, 1), (0, 1)], READ_AT) == [Cell(PLAIN, "b2")]
    assert not raw.exists(keys.mp_reads_key(T)) and warm_sums.recorded == [-1]


def test_sums_name_every_cold_cell_of_every_entry(raw, warm_sums):
    raw.hdel(keys.mp_counts_key(T, PLAIN.id), "b2")
    raw.hdel(keys.mp_counts_key(T, TIMED.id), "z:b3")
    reader = TicketCounters(RedisCounters(raw), build_caches({}).specs)
    cold = reader.read_sums(warm_sums, [(0, 1), (0, 1)], READ_AT)
    assert cold == [Cell(PLAIN, "b2"), Cell(TIMED, "b3"), Cell(TIMED, "b3")]


def test_sums_read_each_entry_over_its_own_buckets(raw, warm_sums):
    # An entry over fewer buckets (a narrowed view: Assigned to Me reads asg:me alone), and a
    # timed entry whose buckets were listed before in another order (a repeated KEYS block).
    reader = TicketCounters(RedisCounters(raw), build_caches({}).specs)
    sums = Sums.of(T, [(PLAIN, TERMS), (PLAIN, (("b2", 1),)), (TIMED, (("b3", 1), ("b1", 1))),
                       (TIMED, TERMS)])
    assert reader.read_sums(sums, [(100, 200), (100, 200)], READ_AT).sums == [10, 7, 2, 1]
    assert len(sums.cells) == 3 + 1 + 2 + 3
    raw.hdel(keys.mp_counts_key(T, PLAIN.id), "b2")
    raw.hdel(keys.mp_counts_key(T, TIMED.id), "z:b1")
    assert reader.read_sums(sums, [(0, 1), (0, 1)], READ_AT) == [
        Cell(PLAIN, "b2"), Cell(PLAIN, "b2"), Cell(TIMED, "b1"), Cell(TIMED, "b1")]


def test_a_dead_redis_raises_store_unavailable():
    dead = RedisCounters(redis.Redis(port=1, socket_connect_timeout=0.2, decode_responses=True))
    with pytest.raises(StoreUnavailable):
        dead.read_notifications(T, "u1")
