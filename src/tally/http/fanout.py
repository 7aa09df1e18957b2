"""One Redis pub/sub connection per process, fanned out to every notification stream it serves.

The outbox publishes "changed" on a user's channel (keys.stream_channel) after applying; the hub
wakes every stream of that channel, and each stream re-reads its counts and sends them if their
version moved. Only the hub's thread touches the pub/sub connection: streams register and leave
under a lock, and the thread (un)subscribes to match within POLL_SECONDS. A new channel's
streams are woken once its SUBSCRIBE is confirmed, so a change landing between a stream's first
read and its subscription is never missed. While the connection is down the hub keeps retrying,
streams fall back to re-reading at every heartbeat, and all are woken when it is back.

Bounds per process: `per_process` streams in all, `per_user` on one channel. A user's new stream
is never refused because of that user's own streams: at either bound it replaces the oldest
stream the user holds here (which ends; a live client reconnects after the `retry` hint), so a
reload or a dead connection nobody noticed yet never locks a user out. Only a process full of
other users' streams refuses one: `open` raises StreamsExhausted (503 with Retry-After). A
stream's client socket, when given, is watched (tally.http.hangups): a client that closes ends its
stream at once rather than at its next heartbeat.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from typing import Any, Callable

import redis
from redis.exceptions import RedisClusterException

from tally.errors import StreamsExhausted
from tally.http.hangups import Hangups
from tally.observability.metrics import SSE_CONNECTIONS, SSE_REFUSED, SSE_REPLACED

log = logging.getLogger("tally.http.fanout")

POLL_SECONDS = 0.1  # how long the hub waits for a message before looking at (un)subscriptions
LINGER_SECONDS = 5.0  # how long an idle hub keeps its connection (streams reconnect often)
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # back-off while the connection cannot be made

_HUBS: "weakref.WeakSet[Hub]" = weakref.WeakSet()


class Subscription:
    """One stream's registration: a flag the hub raises when the stream should re-read."""

    def __init__(self, hub: "Hub", channel: str, peer: socket.socket | None = None):
        self.hub = hub
        self.channel = channel
        self.peer = peer
        self._event = threading.Event()
        self._closed = False
        self._over = False

    def wake(self) -> None:
        self._event.set()

    def end(self) -> None:
        """End this stream: its client left, or a newer stream of its user replaced it."""
        self._over = True
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """True when woken (a change, a reconnection, a shutdown), False after `timeout`.

        The flag is cleared on return, so a change arriving while the stream re-reads wakes it
        again rather than being lost.
        """
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken

    @property
    def stale(self) -> bool:
        """True when changes may go unannounced (the hub is not connected): re-read on heartbeat."""
        return not self.hub.connected

    @property
    def ending(self) -> bool:
        return self._over or self.hub.closing

    def close(self) -> None:
        """Leave the hub; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self.hub.leave(self)


class Hub:
    """A process's pub/sub listener and the streams waiting on it.

    `client_of` returns the Redis client to subscribe with (the counter store's, standalone or
    Cluster: classic pub/sub messages reach every node of a cluster).
    """

    def __init__(self, client_of: Callable[[], Any], per_process: int, per_user: int):
        self._client_of = client_of
        self.per_process = per_process
        self.per_user = per_user
        self._lock = threading.Lock()
        # A channel's streams in the order they opened (a dict is an ordered set). Bounded by
        # per_process streams in all: a channel goes when its last stream closes.
        self._channels: dict[str, dict[Subscription, None]] = {}
        self._hangups = Hangups()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.connected = False
        self.closing = False
        _HUBS.add(self)

    # -- streams' side -------------------------------------------------------------------------
    def open(self, channel: str, peer: socket.socket | None = None) -> Subscription:
        """Register a stream on `channel` (one user's), replacing that user's oldest stream
        when a bound is reached; raises StreamsExhausted when other users' streams fill the
        process. `peer`, the client's socket, is watched for the client closing."""
        replaced: Subscription | None = None
        with self._lock:
            self._after_fork()
            waiting = self._channels.get(channel, {})
            full = len(waiting) >= self.per_user or self.count() >= self.per_process
            if self.closing or self.per_user == 0 or (full and not waiting):
                SSE_REFUSED.labels("process").inc()
                raise StreamsExhausted()
            if full:
                replaced = next(iter(waiting))
                self._forget(replaced)
            subscription = Subscription(self, channel, peer)
            self._channels.setdefault(channel, {})[subscription] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tally-fanout",
                                                daemon=True)
                self._thread.start()
        SSE_CONNECTIONS.inc()
        if replaced is not None:
            SSE_REPLACED.inc()
            replaced.end()
        if peer is not None:
            self._hangups.watch(peer, subscription.end)
        return subscription

    def leave(self, subscription: Subscription) -> None:
        if subscription.peer is not None:
            self._hangups.forget(subscription.peer)
        with self._lock:
            self._forget(subscription)
        SSE_CONNECTIONS.dec()

    def _forget(self, subscription: Subscription) -> None:
        """Take a stream off its channel (under the lock); it no longer counts to any bound."""
        waiting = self._channels.get(subscription.channel)
        if waiting is not None:
            waiting.pop(subscription, None)
            if not waiting:
                del self._channels[subscription.channel]

    def count(self) -> int:
        """Streams registered now."""
        return sum(len(waiting) for waiting in self._channels.values())

    def close(self) -> None:
        """End every stream (process shutdown): each is woken and sees `ending`."""
        self.closing = True
        self._wake_all()

    # -- the hub's thread ----------------------------------------------------------------------
    def _after_fork(self) -> None:
        """In a forked child, forget the parent's thread and streams (called under the lock)."""
        if self._pid != os.getpid():
            self._pid, self._thread, self.connected = os.getpid(), None, False
            self._channels = {}

    def _wake(self, channel: str) -> None:
        with self._lock:
            waiting = list(self._channels.get(channel, ()))
        for subscription in waiting:
            subscription.wake()

    def _wake_all(self) -> None:
        with self._lock:
            waiting = [s for group in self._channels.values() for s in group]
        for subscription in waiting:
            subscription.wake()

    def _run(self) -> None:
        failures = 0
        while True:
            try:
                if not self._listen():
                    return
                failures = 0
            except (redis.RedisError, RedisClusterException, OSError) as error:
                if self.connected or failures == 0:
                    log.warning("stream fan-out lost its Redis connection (%s); streams re-read "
                                "at every heartbeat until it is back", type(error).__name__)
                self.connected = False
                self._wake_all()
                time.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1

    def _listen(self) -> bool:
        """Serve until idle for LINGER_SECONDS (returns False) or the connection fails (raises)."""
        pubsub = self._client_of().pubsub()
        subscribed: set[str] = set()
        idle_since: float | None = None
        try:
            while True:
                with self._lock:
                    wanted = set(self._channels)
                    if not wanted and not subscribed:
                        idle_since = idle_since or time.monotonic()
                        if self.closing or time.monotonic() - idle_since > LINGER_SECONDS:
                            self._thread, self.connected = None, False
                            return False
                    else:
                        idle_since = None
                if wanted - subscribed:
                    pubsub.subscribe(*sorted(wanted - subscribed))
                if subscribed - wanted:
                    pubsub.unsubscribe(*sorted(subscribed - wanted))
                subscribed = wanted
                if not subscribed:
                    time.sleep(POLL_SECONDS)
                    continue
                self._dispatch(pubsub.get_message(timeout=POLL_SECONDS))
        finally:
            pubsub.close()

    def _dispatch(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        kind = message.get("type")
        if kind == "subscribe":
            if not self.connected:
                self.connected = True
                log.info("stream fan-out subscribed to Redis")
                self._wake_all()  # changes made while we were away are re-read now
            self._wake(channel)
        elif kind == "message":
            self._wake(channel)


def close_all() -> None:
    """End the streams of every hub of this process (gunicorn's worker shutdown calls it)."""
    for hub in list(_HUBS):
        hub.close()
