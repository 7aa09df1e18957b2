"""The notification read service: one round trip warm, a safe rebuild cold, SQL without Redis."""
from __future__ import annotations

import dataclasses
import uuid
from contextlib import contextmanager

import pytest
from redis.connection import Connection

from tally.services import notifications
from tally.errors import RebuildBusy
from tally.stores import keys
from tally.services import ingest, outbox
from tests.support import factories
from tests.support.factories import BASE_MS, MIX

pytestmark = pytest.mark.both_databases

T = str(uuid.uuid4())
USER = "user-1"
GROUP = keys.notification_group(USER)
KEY = keys.notification_counts_key(T, USER)


def count_round_trips(monkeypatch) -> list[bytes]:
    """Record every write to a Redis socket from now on: one entry per round trip, holding the
    packed commands it carried."""
    sent: list[bytes] = []
    original = Connection.send_packed_command

    def spy(self, command, check_health=True):
        sent.append(b"".join(command) if isinstance(command, list) else command)
        return original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", spy)
    return sent


class HookedCounters:
    """The real counters, with a hook that runs just before install (a concurrent writer)."""

    def __init__(self, real, before_install):
        self._real, self._before_install = real, before_install

    def __getattr__(self, name):
        return getattr(self._real, name)

    def install(self, *args, **kwargs):
        self._before_install()
        return self._real.install(*args, **kwargs)


def test_cold_read_recomputes_from_sql_and_installs(services, raw):
    factories.notifications(services.db, T, USER, MIX)
    result = notifications.count(services, T, USER)
    assert result.source == "recomputed"
    assert (result.value.total, result.value.unread) == (6, 4)
    assert raw.hget(KEY, "unread") == "4"
    assert not raw.exists(keys.group_lock_key(T, GROUP))
    again = notifications.count(services, T, USER)
    assert (again.source, again.value) == ("cache", result.value)


def test_warm_read_is_exactly_one_redis_round_trip(services, monkeypatch):
    factories.notifications(services.db, T, USER, MIX)
    notifications.count(services, T, USER)
    sent = count_round_trips(monkeypatch)
    result = notifications.count(services, T, USER)
    assert result.source == "cache"
    # one write to the socket: the applied watermark first, then the counts
    assert len(sent) == 1 and sent[0].index(b"GET") < sent[0].index(b"HGETALL"), sent


def test_a_user_without_notifications_is_warm_after_one_read(services, raw):
    assert notifications.count(services, T, "nobody").value.total == 0
    assert notifications.count(services, T, "nobody").source == "cache"


def mark_read(services, ids) -> int:
    """The events side's read: rows and outbox row in one transaction; returns the outbox id."""
    with services.db.write() as session:
        return ingest.mark_notifications_read(session, T, USER, ids, at=BASE_MS + 60_000)


def test_an_apply_during_a_rebuild_is_refused_then_counted_once(services, raw):
    # Given a cold user, and a writer that commits a read after the rebuild's SQL snapshot
    # but before its install, and tries to apply it at once
    ids = factories.notifications(services.db, T, USER, MIX)
    refused = []

    def concurrent_write():
        outbox_id = mark_read(services, [ids[1]])  # an unread comment of high priority
        with pytest.raises(RebuildBusy):
            outbox.apply_pending(services, T, ids=[outbox_id])
        refused.append(outbox_id)

    hooked = dataclasses.replace(services,
                                 counters=HookedCounters(services.counters, concurrent_write))
    # When the cold read rebuilds
    result = notifications.count(hooked, T, USER)
    # Then it answers its snapshot, and the refused delta lands once its job retries
    assert (result.source, result.value.unread) == ("recomputed", 4)
    assert outbox.apply_pending(services, T, ids=refused).applied == 1
    cached = services.counters.read_notifications(T, USER)
    assert (cached.unread, cached.by_type["comment"], cached.by_priority["high"]) == (3, 1, 1)
    assert cached == notifications.sql_only(services, T, USER).value


def test_a_pending_delta_already_in_the_snapshot_is_not_counted_twice(services, raw):
    ids = factories.notifications(services.db, T, USER, MIX)
    pending = mark_read(services, [ids[0]])  # committed, not yet applied
    assert notifications.count(services, T, USER).value.unread == 3
    assert outbox.apply_pending(services, T, ids=[pending]).applied == 1
    assert raw.hget(KEY, "unread") == "3"
    assert services.counters.read_notifications(T, USER) == notifications.sql_only(
        services, T, USER).value


def test_while_another_rebuild_runs_the_answer_comes_from_sql_uninstalled(services, raw):
    factories.notifications(services.db, T, USER, MIX)
    assert services.counters.begin_rebuild(T, GROUP)
    result = notifications.count(services, T, USER)
    assert (result.source, result.value.unread) == ("recomputed", 4)
    assert not raw.exists(KEY)
    assert notifications.rebuild_user(services, T, USER) is False


def test_a_lost_marker_installs_nothing_and_still_answers(services, raw):
    factories.notifications(services.db, T, USER, MIX)
    lose_marker = HookedCounters(services.counters,
                                 lambda: raw.delete(keys.group_lock_key(T, GROUP)))
    result = notifications.count(dataclasses.replace(services, counters=lose_marker), T, USER)
    assert result.value.unread == 4
    assert not raw.exists(KEY)


class BrokenDatabase:
    """A database whose snapshot fails, as a dropped connection would."""

    def __init__(self, real):
        self._real = real

    @contextmanager
    def snapshot(self):
        raise RuntimeError("connection lost")
        yield


def test_a_failed_rebuild_clears_its_marker(services, raw):
    broken = dataclasses.replace(services, db=BrokenDatabase(services.db))
    with pytest.raises(RuntimeError):
        notifications.count(broken, T, USER)
    assert not raw.exists(keys.group_lock_key(T, GROUP))
    assert services.counters.begin_rebuild(T, GROUP)


def test_without_redis_the_answer_comes_from_sql(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    services = app.extensions["tally"]
    factories.notifications(services.db, T, USER, MIX)
    result = notifications.count(services, T, USER)
    assert (result.source, result.value.unread, result.value.total) == ("sql", 4, 6)


def test_rebuild_user_overwrites_drifted_counters(services, raw):
    factories.notifications(services.db, T, USER, MIX)
    notifications.count(services, T, USER)
    raw.hset(KEY, "unread", 99)
    assert notifications.rebuild_user(services, T, USER) is True
    assert raw.hget(KEY, "unread") == "4"


def test_list_pages_follow_the_keyset(services):
    ids = factories.notifications(services.db, T, USER, MIX)
    first = notifications.list_page(services, T, USER, 4)
    assert [r.id for r in first.items] == [ids[5], ids[4], ids[3], ids[2]]
    assert first.next_after == (first.items[-1].created_at, ids[2])
    rest = notifications.list_page(services, T, USER, 4, after=first.next_after)
    assert ([r.id for r in rest.items], rest.next_after) == ([ids[1], ids[0]], None)
