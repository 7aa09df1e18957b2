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

Requests waiting for a watermark (tally.http.watermarks) register with `watch`: short-lived,
outside the streams' bounds, on the tenant's watermark channel, which stays subscribed for
LINGER_SECONDS after its last waiter left (a tenant that writes keeps it, so a wait does not pay
for a SUBSCRIBE).
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
from flask import Flask
from redis.exceptions import RedisClusterException

from tally.errors import StreamsExhausted
from tally.http.hangups import Hangups
from tally.observability.metrics import SSE_CONNECTIONS, SSE_REFUSED, SSE_REPLACED

log = logging.getLogger("tally.http.fanout")

POLL_SECONDS = 0.1  # how long the hub waits for a message before looking at (un)subscriptions
LINGER_SECONDS = 5.0  # how long an idle hub keeps its connection (streams reconnect often)
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # back-off while the connection cannot be made

EXTENSION = "tally_streams"

_HUBS: "weakref.WeakSet[Hub]" = weakref.WeakSet()
_hub_lock = threading.Lock()


def hub(app: Flask) -> "Hub":
    """The app's fan-out hub, built on first use with the configured bounds."""
    with _hub_lock:
        found = app.extensions.get(EXTENSION)
        if found is None:
            svc = app.extensions["tally"]
            config = svc.config
            found = Hub(lambda: svc.counters.client, int(config.STREAMS_PER_PROCESS),
                        int(config.STREAMS_PER_USER))
            app.extensions[EXTENSION] = found
        return found


class Subscription:
    """One stream's (or waiting request's) registration: a flag the hub raises when it should
    re-read."""

    def __init__(self, hub: "Hub", channel: str, peer: socket.socket | None = None,
                 stream: bool = True):
        self.hub = hub
        self.channel = channel
        self.peer = peer
        self.stream = stream
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
        # Waiting requests per channel, and when each waiters' channel was last used.
        self._waiters: dict[str, dict[Subscription, None]] = {}
        self._watched: dict[str, float] = {}
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

    def watch(self, channel: str) -> Subscription:
        """Register a waiting request on `channel` (not a stream: no bound, no SSE metric).
        It is woken by a message on the channel, by the channel's subscription being confirmed
        and by reconnections; the caller re-reads after registering (a message published before
        the SUBSCRIBE took effect is covered by that confirmation's wake)."""
        subscription = Subscription(self, channel, stream=False)
        with self._lock:
            self._after_fork()
            self._waiters.setdefault(channel, {})[subscription] = None
            self._watched[channel] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tally-fanout",
                                                daemon=True)
                self._thread.start()
        return subscription

    def leave(self, subscription: Subscription) -> None:
        if not subscription.stream:
            with self._lock:
                waiting = self._waiters.get(subscription.channel)
                if waiting is not None:
                    waiting.pop(subscription, None)
                    if not waiting:
                        del self._waiters[subscription.channel]
                self._watched[subscription.channel] = time.monotonic()
            return
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
            self._channels, self._waiters, self._watched = {}, {}, {}

    def _wake(self, channel: str) -> None:
        with self._lock:
            waiting = [*self._channels.get(channel, ()), *self._waiters.get(channel, ())]
        for subscription in waiting:
            subscription.wake()

    def _wake_all(self) -> None:
        with self._lock:
            waiting = [s for groups in (self._channels, self._waiters)
                       for group in groups.values() for s in group]
        for subscription in waiting:
            subscription.wake()

    def _wanted(self) -> set[str]:
        """Channels to be subscribed to (under the lock): streams', waiters', and waiters'
        channels used within LINGER_SECONDS."""
        now = time.monotonic()
        for channel, used in list(self._watched.items()):
            if channel not in self._waiters and now - used > LINGER_SECONDS:
                del self._watched[channel]
        return set(self._channels) | set(self._watched)

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
                    wanted = self._wanted()
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
