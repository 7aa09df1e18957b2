"""Notice at once when the client of an open stream goes away, from its socket.

A stream's thread sleeps between events and keep-alives, so on its own it learns that its client
left only when a write fails: at the next heartbeat at best (STREAM_HEARTBEAT_SECONDS), and for a
peer that vanished without closing, not before TCP gives up. Meanwhile the stream holds its slot
under the per-process bound. One thread per process watches the sockets of every open stream
instead (epoll where the platform has it) and calls a stream's callback as soon as its peer has
closed its end: the socket reads as ready with nothing to read (`recv` with MSG_PEEK gives b"").
A socket that is ready with data (an HTTP client does not send on a streaming response) is
dropped from the watch and left to the heartbeat; one whose read fails counts as closed.

gunicorn hands the client socket to the app as `environ["gunicorn.socket"]`; behind the edge
(tally.edge) that socket is the proxy's upstream connection, which the proxy closes when its own
client leaves.
"""
from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
from typing import Callable

log = logging.getLogger("tally.http.hangups")

# How long the watching thread waits before it looks again. Sockets registered meanwhile are seen
# at once with epoll and kqueue; this bounds the delay with the select() and poll() fallbacks.
WAKE_SECONDS = 1.0


def peer_closed(sock: socket.socket) -> bool | None:
    """True when the peer closed (or the socket failed), False when it sent data, None when
    there is nothing to read yet."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:  # reset by the peer, or closed under us: either way the stream is over
        return True


class Hangups:
    """Sockets being watched, each with the callback to run when its peer closes."""

    def __init__(self, wake_seconds: float = WAKE_SECONDS):
        self._wake_seconds = wake_seconds
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._pid = 0

    def watch(self, sock: socket.socket, on_hangup: Callable[[], None]) -> None:
        """Call `on_hangup` (from the watching thread) once `sock`'s peer has closed."""
        with self._lock:
            selector = self._selector_here()
            try:
                selector.register(sock, selectors.EVENT_READ, on_hangup)
            except (KeyError, ValueError, OSError):  # already watched, or already closed
                log.debug("socket not watched", exc_info=True)

    def forget(self, sock: socket.socket) -> None:
        """Stop watching `sock` (before it is closed or handed back to the server)."""
        with self._lock:
            if self._selector is not None and self._pid == os.getpid():
                self._unregister(self._selector, sock)

    def watching(self) -> int:
        with self._lock:
            return len(self._selector.get_map()) if self._selector is not None else 0

    def _selector_here(self) -> selectors.BaseSelector:
        """This process's selector and thread (a forked child starts its own); under the lock."""
        if self._selector is None or self._pid != os.getpid():
            self._selector, self._pid = selectors.DefaultSelector(), os.getpid()
            threading.Thread(target=self._run, args=(self._selector,), name="tally-hangups",
                             daemon=True).start()
        return self._selector

    @staticmethod
    def _unregister(selector: selectors.BaseSelector, sock: socket.socket) -> None:
        try:
            selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _run(self, selector: selectors.BaseSelector) -> None:
        while True:
            for key, _ in selector.select(self._wake_seconds):
                closed = peer_closed(key.fileobj)  # type: ignore[arg-type]
                if closed is None:
                    continue
                with self._lock:
                    if selector.get_map().get(key.fileobj) is not key:
                        continue  # forgotten meanwhile: the stream ended by itself
                    self._unregister(selector, key.fileobj)  # type: ignore[arg-type]
                if closed:
                    try:
                        key.data()
                    except Exception:  # a callback's failure must not stop the watching
                        log.exception("hang-up callback failed")
