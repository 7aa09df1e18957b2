"""What the hot views' inputs loaded to, by their raw bytes.

Every open tab polls the badge with the same query string, and every agent's sidebar sends the
very same query and body every few seconds; marshmallow validating a sidebar's 30 ids and its
timezone costs more than the rest of the view's own work. The views load them with
`@blp.arguments` like every other view; tally's Blueprint (tally.http.bodies) answers a load of a
schema given to `Blueprint.remember` from a `Remembered`, which the fast path in front of Flask
(tally.http.fast_reads) peeks at too.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Remembered(Generic[T]):
    """A loader whose answer is a pure function of the request's raw bytes, remembering what
    recent raw inputs loaded to (marshmallow validating a sidebar's 30 ids and its timezone costs
    more than the rest of the view's own work, for the same bytes every poll).

    `raw()` gives the bytes the answer depends on, all of them; `load()`, given to each call,
    reads the request.
    Only successful loads are kept (a bad input raises its 400 again each time), only of inputs
    of at most `max_bytes`, at most `size` of them (the oldest dropped first). The values are
    shared between requests and threads: callers must not modify them.
    """

    def __init__(self, raw: Callable[[], bytes], size: int = 1024, max_bytes: int = 16384):
        self.raw, self.size, self.max_bytes = raw, size, max_bytes
        self._seen: dict[bytes, T] = {}
        self._lock = threading.Lock()

    def __call__(self, load: Callable[[], T]) -> T:
        key = self.raw()
        if len(key) > self.max_bytes:
            return load()
        value = self.peek(key)
        if value is None:
            value = load()
            with self._lock:
                self._seen[key] = value
                while len(self._seen) > self.size:
                    del self._seen[next(iter(self._seen))]
        return value

    def peek(self, raw: bytes) -> T | None:
        """What `raw` loaded to, if it is remembered; None: load it through a request."""
        return self._seen.get(raw)
