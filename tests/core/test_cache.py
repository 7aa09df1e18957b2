"""tally.core.cache.Cache: bounded, least recently used dropped first, each entry judged by its
cache's rule; tally.extensions.build_caches: every app its own."""
from __future__ import annotations

from tally.core.cache import Cache, same, same_each, until, until_both
from tally.services.container import build_caches


def test_the_least_recently_used_entry_goes_first():
    cache = Cache("test", 2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # read: now more recent than b
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    cache.put("d", 4)  # a and c were both read: one of them goes, never the entry just put
    assert len(cache) == 2 and "d" in cache


def test_an_expired_entry_is_not_served_but_stays_as_the_last_known_value():
    cache = Cache("test", 10, until)
    cache.put("tenant", "realm", 100.0)
    assert cache.get("tenant", 99.9) == "realm"
    assert cache.get("tenant", 100.0) is None
    assert cache.stale("tenant") == "realm"  # the fallback while the source is down
    cache.pop("tenant")
    assert cache.stale("tenant") is None


def test_a_generation_rule_serves_only_the_generation_the_caller_holds():
    cache = Cache("test", 10, same)
    cache.put("ids", "answer", 7)
    assert cache.get("ids", 7) == "answer" and cache.get("ids", 8) is None


def test_two_clocks_must_both_hold():
    cache = Cache("test", 10, until_both)
    cache.put("headers", "principal", (10.0, 1_000.0))
    assert cache.get("headers", (9.0, 999.0)) == "principal"
    assert cache.get("headers", (10.0, 999.0)) is None
    assert cache.get("headers", (9.0, 1_000.0)) is None


def test_derived_from_the_very_same_objects_only():
    cache = Cache("test", 10, same_each)
    first, equal = ["definition"], ["definition"]
    cache.put("shape", "plan", (first, None))
    assert cache.get("shape", (first, None)) == "plan"
    assert cache.get("shape", (equal, None)) is None  # equal is not enough
    assert cache.get("shape", (first,)) is None


def test_weights_bound_the_cache_too_but_never_below_one_entry():
    cache = Cache("test", 100, max_weight=10)
    cache.put("a", 1, weight=6)
    cache.put("b", 2, weight=6)
    assert "a" not in cache and "b" in cache
    cache.put("huge", 3, weight=50)
    assert len(cache) == 1 and cache.get("huge") == 3


def test_each_app_builds_its_own_caches_sized_by_name():
    one, other = build_caches({}), build_caches({"plans": 3})
    one.tokens.put(b"digest", "verified", 1e18)
    assert other.tokens.get(b"digest", 0.0) is None
    assert (one.plans.size, other.plans.size) == (2048, 3)
