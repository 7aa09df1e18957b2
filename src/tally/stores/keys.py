"""Every Redis key name tally uses. All of a tenant's keys share the hash tag {<tenant>}.

Callers pass ids that were validated at the edge (UUID tenants, ids matching ID_PATTERN), so no
key can escape its tenant's slot or collide with another's.
"""
from __future__ import annotations

from typing import Iterable

from tally.core.model import ID_PATTERN

PREFIX = "tally"


def _check(value: str, what: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid id")
    return value


def tenant_prefix(tenant: str) -> str:
    return f"{PREFIX}:{{{_check(tenant, 'tenant')}}}:"


def tenant_pattern(tenant: str) -> str:
    """A SCAN pattern for every key of one tenant."""
    return tenant_prefix(tenant) + "*"


def applied_key(tenant: str) -> str:
    """Sorted set of outbox ids already applied to this tenant's counters (score: when)."""
    return tenant_prefix(tenant) + "applied"


def watermark_key(tenant: str) -> str:
    """The tenant's applied watermark: every outbox row stamped at or below it is reflected by
    every warm counter of the tenant (it only moves up; a flush loses it, claiming nothing)."""
    return tenant_prefix(tenant) + "wm"


def watermark_channel(tenant: str) -> str:
    """Pub/sub channel told the tenant's new applied watermark (requests waiting for a write)."""
    return tenant_prefix(tenant) + "wmchan"


# In the QUEUE Redis, not a counter key (so no tenant tag): drifted groups the scheduled sampling
# verify has found, summed over every tenant and run (tally.services.figures; /metrics shows it).
DRIFT_FOUND_KEY = f"{PREFIX}:stats:drift_found"
# In the QUEUE Redis too: outbox rows applied to the counters for the first time, every tenant
# (tally.services.outbox; /metrics shows it).
EVENTS_APPLIED_KEY = f"{PREFIX}:stats:events_applied"

# The outbox group of every ticket change; cells are rebuilt per (MP, bucket) from it.
TICKETS_GROUP = "tickets"


def notification_group(user: str) -> str:
    return f"n:{_check(user, 'user')}"


def group_lock_key(tenant: str, group: str) -> str:
    """The rebuild marker of one counter group: applies refuse while it exists."""
    return tenant_prefix(tenant) + f"lock:{group}"


def group_snapshot_key(tenant: str, group: str) -> str:
    """Outbox ids already counted in the group's last rebuild: applies skip them for this group."""
    return tenant_prefix(tenant) + f"snap:{group}"


def notification_counts_key(tenant: str, user: str) -> str:
    """Hash of one user's notification counters; its existence means the group is warm."""
    return tenant_prefix(tenant) + f"ncount:{_check(user, 'user')}"


def stream_channel(tenant: str, user: str) -> str:
    """Pub/sub channel told when a user's notification counters change."""
    return tenant_prefix(tenant) + f"nchan:{_check(user, 'user')}"


# -- ticket counters: materialised predicates (MPs) × scope buckets ("cells") --------------------
def mp_registry_key(tenant: str) -> str:
    """Hash: MP id -> its spec (JSON). The worker derives ticket deltas for every MP listed."""
    return tenant_prefix(tenant) + "mpreg"


def mp_version_key(tenant: str) -> str:
    """Bumped whenever an MP is registered or dropped; applies are guarded by it."""
    return tenant_prefix(tenant) + "mpver"


def mp_reach_key(tenant: str) -> str:
    """Hash: timed MP id -> how far below now (ms) any window read from it reaches (the largest
    recorded); trimming folds only members below now - reach (see core/cells.py)."""
    return tenant_prefix(tenant) + "mpreach"


def mp_reads_key(tenant: str) -> str:
    """Hash: MP id -> when it was last read (epoch ms, to the minute); the idle drop reads it."""
    return tenant_prefix(tenant) + "mpread"


def mp_parts_key(tenant: str, mp: str) -> str:
    """Hash of what an MP was ever begun with, as fields: 'c:<bucket>' per cell, 'o:<filter>'
    per origin (a hash, not a set: small hashes are packed, ~20 B a field against ~70)."""
    return tenant_prefix(tenant) + f"mpp:{mp}"


def mp_counts_key(tenant: str, mp: str) -> str:
    """Hash of one MP: <bucket> = count (plain MPs); for timed MPs z:<bucket> = the cell's cutoff
    (its warm marker) and f:<bucket> = its floor, the members below the cutoff folded to a count."""
    return tenant_prefix(tenant) + f"mp:{mp}"


def timed_fields(bucket: str) -> tuple[str, str]:
    """A timed cell's two fields in its MP's counts hash: cutoff (warm marker) and floor."""
    return f"z:{bucket}", f"f:{bucket}"


def mp_zset_key(tenant: str, mp: str, bucket: str) -> str:
    """Timed MP cell: members '<ticket>:<version>' scored by the MP's timestamp field."""
    return tenant_prefix(tenant) + f"mpz:{mp}:{bucket}"


def mp_negatives_key(tenant: str, mp: str, bucket: str) -> str:
    """Removals that arrived before their additions (see zmove in apply.lua)."""
    return tenant_prefix(tenant) + f"mpn:{mp}:{bucket}"


def cell_group(mp: str, bucket: str) -> str:
    return f"c:{mp}:{bucket}"


def mp_data_keys(tenant: str, mp: str, buckets: Iterable[str]) -> list[str]:
    """Every key holding an MP's data but its cells' rebuild markers: its counts hash, its parts
    hash and, per bucket, the sorted set, negatives and snapshot set. A new per-MP or per-cell key
    belongs here too: the idle drop deletes exactly these (with the markers, if none is set)."""
    found = [mp_counts_key(tenant, mp), mp_parts_key(tenant, mp)]
    for bucket in buckets:
        found += [mp_zset_key(tenant, mp, bucket), mp_negatives_key(tenant, mp, bucket),
                  group_snapshot_key(tenant, cell_group(mp, bucket))]
    return found


def filter_mps_key(tenant: str, filter_id: str) -> str:
    """Set of the MP ids a filter (or profile) was materialised into, for invalidation."""
    return tenant_prefix(tenant) + f"fmps:{_check(filter_id, 'filter')}"


# Suffixes (after the tenant prefix) of every key that belongs to one MP, each followed by the id.
_MP_KEY_HEADS = ("mp:", "mpz:", "mpn:", "mpp:", "snap:c:", "lock:c:")
_ORIGIN_HEAD = "fmps:"


def mp_of_key(tenant: str, key: str) -> str | None:
    """The MP id owning a ticket cell key (counts, zset, negatives, snapshot, marker), or None."""
    suffix = key.removeprefix(tenant_prefix(tenant))
    for head in _MP_KEY_HEADS:
        if suffix.startswith(head):
            return suffix[len(head):].split(":", 1)[0] or None
    return None


def origin_filter_of_key(tenant: str, key: str) -> str | None:
    """The filter id of an origin set key (see filter_mps_key), or None for any other key."""
    suffix = key.removeprefix(tenant_prefix(tenant))
    return suffix[len(_ORIGIN_HEAD):] if suffix.startswith(_ORIGIN_HEAD) else None


def origin_sets_pattern(tenant: str) -> str:
    """A SCAN pattern for every origin set of one tenant."""
    return tenant_prefix(tenant) + _ORIGIN_HEAD + "*"
