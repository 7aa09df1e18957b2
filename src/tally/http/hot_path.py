"""What the hot views' inputs loaded to, by their raw bytes, in the app's caches.

Every open tab polls the badge with the same query string, and every agent's sidebar sends the
very same query and body every few seconds; marshmallow validating a sidebar's 30 ids and its
timezone costs more than the rest of the view's own work. The views load them with
`@blp.arguments` like every other view; tally's Blueprint (tally.http.bodies) answers a load of a
schema given to `Blueprint.remember` from a `Remembered`, whose app cache the fast path in front
of Flask (tally.http.fast_reads) reads too.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from tally.core.cache import Cache
from tally.extensions import services
from tally.services.container import Caches

T = TypeVar("T")


class Remembered(Generic[T]):
    """A loader whose answer is a pure function of the request's raw bytes, remembering what
    raw inputs loaded to in one of the app's caches.

    `raw()` gives the bytes the answer depends on, all of them; `load()`, given to each call,
    reads the request; `cache(caches)` picks the app's cache. Only successful loads are kept (a
    bad input raises its 400 again each time), only of inputs of at most `max_bytes` (the cache
    bounds how many). The values are shared between requests and threads: callers must not
    modify them.
    """

    def __init__(self, raw: Callable[[], bytes], cache: Callable[[Caches], Cache[bytes, T]],
                 max_bytes: int = 16384):
        self.raw, self.cache, self.max_bytes = raw, cache, max_bytes

    def __call__(self, load: Callable[[], T]) -> T:
        key = self.raw()
        if len(key) > self.max_bytes:
            return load()
        cache = self.cache(services().caches)
        value = cache.get(key)
        return value if value is not None else cache.put(key, load())
