"""The one cache of derived work: a bounded LRU map whose every entry carries its own validity.

Each entry is stored with a stamp (an expiry time, a generation, the objects it was derived
from) and the cache's rule judges that stamp against what the caller holds now on every read:
`until` (valid while the stamp is later than now), `same` (valid while the stamp equals the
generation the caller holds), `until_both` (two expiries on two clocks), `same_each` (valid
while each object it was derived from is the one the caller holds). A cache without a rule
holds pure functions of their keys. Every cache is bounded by entries (least recently used
dropped first) and, where keys can be large, by their summed weight. The app owns its caches
(tally.extensions.Caches); nothing is module-level, so nothing outlives an app.

Reads take no lock and allocate nothing: a hit is one dict lookup and marks its entry used
(moving it to the back on every read would cost the badge poll a second lookup). Eviction,
under the lock with every write, is LRU by second chance (CLOCK): the oldest entry goes,
unless it was read since it was last passed over; then it moves to the back, unmarked.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Rule = Callable[[Any, Any], bool]  # (the entry's stamp, what the caller holds now) -> valid


def until(stamp: Any, now: Any) -> bool:
    """An expiry: the entry holds while its stamp (a deadline) is later than `now`."""
    return stamp > now


def same(stamp: Any, current: Any) -> bool:
    """A generation: the entry holds while its stamp equals the generation the caller holds."""
    return stamp == current


def until_both(stamp: tuple[Any, Any], now: tuple[Any, Any]) -> bool:
    """Two expiries on two clocks (a monotonic deadline, a wall-clock one): both must hold."""
    return stamp[0] > now[0] and stamp[1] > now[1]


def same_each(stamp: tuple[Any, ...], current: tuple[Any, ...]) -> bool:
    """The objects an entry was derived from: it holds while each is the one the caller holds."""
    if len(stamp) != len(current):
        return False
    for held, now in zip(stamp, current):
        if held is not now:
            return False
    return True


class _Entry:
    """A value, the stamp it is judged by, its weight, and whether it was read since it was
    last passed over for eviction."""

    __slots__ = ("value", "stamp", "weight", "used")

    def __init__(self, value: Any, stamp: Any, weight: int):
        self.value, self.stamp, self.weight, self.used = value, stamp, weight, False


class Cache(Generic[K, V]):
    """A bounded, thread-safe LRU map of derived values, each judged by `rule` when read."""

    def __init__(self, name: str, size: int, rule: Rule | None = None,
                 max_weight: int | None = None):
        if size < 1:
            raise ValueError(f"cache {name}: size must be at least 1, not {size}")
        self.name, self.size, self.rule, self.max_weight = name, size, rule, max_weight
        self._entries: OrderedDict[K, _Entry] = OrderedDict()  # oldest first
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: K, now: Any = None) -> V | None:
        """The value of `key` while its entry holds by the rule against `now`; else None."""
        entry = self._entries.get(key)
        if entry is None or (self.rule is not None and not self.rule(entry.stamp, now)):
            return None
        entry.used = True
        return entry.value

    def stale(self, key: K) -> V | None:
        """The last value stored for `key`, valid or not (a fallback while its source is down)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def put(self, key: K, value: V, stamp: Any = None, weight: int = 0) -> V:
        """Store `value` with the stamp its validity is judged by; return it."""
        entries = self._entries
        with self._lock:
            old = entries.pop(key, None)
            if old is not None:
                self._weight -= old.weight
            new = entries[key] = _Entry(value, stamp, weight)
            self._weight += weight
            while len(entries) > self.size or (self.max_weight is not None
                                               and self._weight > self.max_weight
                                               and len(entries) > 1):
                oldest, entry = entries.popitem(last=False)
                if entry.used or entry is new:  # read since last passed over, or just put
                    entry.used = False
                    entries[oldest] = entry
                else:
                    self._weight -= entry.weight
        return value

    def pop(self, key: K) -> None:
        """Forget `key` (its source changed)."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._weight -= old.weight

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
