"""Slow clients (issue 17): connections that send their request a little at a time, on loopback.

`headers` connections send a request line and then one more header line every `interval`
seconds, never ending their headers; `bodies` connections send a complete `POST /events` head
declaring a body of BODY_BYTES and then one byte of it every `interval` seconds (no token: the
guard answers 401 to those, after which a server that drains bodies reads the rest). All of them
stop by themselves after `limit` seconds, or when the `with` block ends.
"""
from __future__ import annotations

import socket
import threading
import time

BODY_BYTES = 100_000
EVENTS = "/api/v2/ticketing/events"


class SlowClients:
    def __init__(self, port: int, headers: int = 200, bodies: int = 100, interval: float = 1.0,
                 limit: float = 60.0):
        self.port = port
        self.counts = (headers, bodies)
        self.interval = interval
        self.limit = limit
        self.sockets: list[socket.socket] = []
        self.alive: set[socket.socket] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)

    def __enter__(self) -> "SlowClients":
        headers, bodies = self.counts
        host = f"Host: 127.0.0.1:{self.port}\r\n"
        for n in range(headers + bodies):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            if n < headers:
                sock.sendall(f"GET /healthz HTTP/1.1\r\n{host}".encode())
            else:
                sock.sendall((f"POST {EVENTS} HTTP/1.1\r\n{host}Content-Type: application/json"
                              f"\r\nContent-Length: {BODY_BYTES}\r\n\r\n{{").encode())
            self.sockets.append(sock)
        self.alive = set(self.sockets)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        deadline = time.monotonic() + self.limit
        headers = self.counts[0]
        line = 0
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            line += 1
            for n, sock in enumerate(self.sockets):
                if sock not in self.alive:
                    continue
                try:
                    sock.sendall(f"X-Slow-{line}: 1\r\n".encode() if n < headers else b" ")
                except OSError:  # the server gave up on this one (a timeout of its own)
                    self.alive.discard(sock)

    def still_open(self) -> int:
        """How many connections the server has not closed yet."""
        return len(self.alive)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()
