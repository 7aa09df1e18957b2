"""Operator maintenance of the counters (invalidate, rebuild, verify), one counter family at a time.

A family is one kind of counter group: per-user notification hashes, and ticket cells (see
ticket_maintenance.py). Every operation walks the families in order.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from sqlalchemy import select

from tally.services import notifications, ticket_maintenance
from tally.services.families import CounterFamily, Difference
from tally.core.model import NotificationCounts
from tally.stores import keys
from tally.stores.sql import notification_counts as sql_counts
from tally.stores.sql.models import Tenant
from tally.stores.redis.counters import wrap_errors

if TYPE_CHECKING:
    from tally.services.container import Services

log = logging.getLogger("tally.services.maintenance")
Progress = Callable[[str], None]
PROGRESS_EVERY = 100


def _quiet(_line: str) -> None:
    """The default progress sink: say nothing."""


@dataclass
class Drift:
    """What verify found: one line per differing field, and how many groups were rebuilt."""

    differences: list[Difference] = field(default_factory=list)
    repaired: int = 0

    @property
    def lines(self) -> list[str]:
        return [d.line for d in self.differences]


# -- notification counters (one hash per user) --------------------------------------------------
def _suffix_pattern(tenant: str, example_key: str, placeholder: str) -> str:
    """A SCAN suffix pattern from a key keys.py built for a placeholder id (keys.py spells keys)."""
    suffix = example_key.removeprefix(keys.tenant_prefix(tenant))
    return suffix.removesuffix(placeholder) + "*"


def _invalidate_notifications(services: "Services", tenant: str, user: str | None,
                              filter_id: str | None) -> int:
    counters = services.counters
    if user is not None:
        group = keys.notification_group(user)
        return counters.delete_keys(keys.notification_counts_key(tenant, user),
                                    keys.group_snapshot_key(tenant, group),
                                    keys.group_lock_key(tenant, group))
    if filter_id is not None:  # only that filter's (ticket) counters were asked for
        return 0
    probe = "0"
    group = keys.notification_group(probe)
    examples = (keys.notification_counts_key(tenant, probe),
                keys.group_snapshot_key(tenant, group), keys.group_lock_key(tenant, group))
    return sum(counters.delete_tenant_keys(tenant, _suffix_pattern(tenant, key, probe))
               for key in examples)


def _notification_users(services: "Services", tenant: str) -> list[str]:
    with services.db.snapshot() as session:
        return sql_counts.notification_users(session, tenant)


@wrap_errors
def _warm_users(services: "Services", tenant: str) -> list[str]:
    """Users whose notification hash exists: SQL lists the users, one pipeline asks Redis."""
    users = _notification_users(services, tenant)
    pipe = services.counters.client.pipeline(transaction=False)
    for user in users:
        pipe.exists(keys.notification_counts_key(tenant, user))
    return [user for user, warm in zip(users, pipe.execute() if users else []) if warm]


def _fields(counts: NotificationCounts) -> dict[str, object]:
    """The counts flattened to wire-style field names, for line-per-field comparison."""
    flat: dict[str, object] = {"total": counts.total, "unread": counts.unread}
    flat.update({f"byType.{k}": v for k, v in counts.by_type.items()})
    flat.update({f"byPriority.{k}": v for k, v in counts.by_priority.items()})
    flat["lastUpdated"] = counts.last_updated
    return flat


def _compare_notifications(services: "Services", tenant: str, user: str) -> list[Difference]:
    """Differences between the user's hash and SQL; none when cold or while deltas are in flight.

    The group's rebuild marker is held while comparing, so no apply changes the hash between the
    Redis read and the SQL snapshot; outbox rows not yet applied mean Redis may lag, not drift.
    """
    counters, group = services.counters, keys.notification_group(user)
    token = counters.begin_rebuild(tenant, group)
    if token is None:
        return []  # a rebuild is installing fresh counters right now
    try:
        cached = counters.read_notifications(tenant, user)
        if cached is None:
            return []
        with services.db.snapshot() as session:
            if sql_counts.group_has_pending(session, tenant, group):
                return []
            truth = sql_counts.notification_counts(session, tenant, user)
    finally:
        counters.abort_rebuild(tenant, group, token)
    redis_fields, sql_fields = _fields(cached), _fields(truth)
    return [Difference("user", user, name, redis_fields[name], value)
            for name, value in sql_fields.items() if redis_fields[name] != value]


NOTIFICATIONS = CounterFamily("user", _invalidate_notifications, _notification_users,
                              notifications.rebuild_user, _compare_notifications, _warm_users)
TICKETS = CounterFamily(ticket_maintenance.NAME, ticket_maintenance.invalidate,
                        ticket_maintenance.members, ticket_maintenance.rebuild,
                        ticket_maintenance.compare, ticket_maintenance.members,
                        has_filters=True)
FAMILIES: list[CounterFamily] = [NOTIFICATIONS, TICKETS]


# -- operations ---------------------------------------------------------------------------------
def invalidate(services: "Services", tenant: str, user: str | None = None,
               filter_id: str | None = None) -> int:
    """Drop counters (a user's, a filter's, or the whole tenant's); returns how many keys went."""
    if filter_id is not None and not any(family.has_filters for family in FAMILIES):
        log.warning("invalidate %s: no counters are kept per filter yet; filter %s drops nothing",
                    tenant, filter_id)
    removed = sum(family.invalidate(services, tenant, user, filter_id) for family in FAMILIES)
    log.info("invalidate %s user=%s filter=%s: %d keys", tenant, user, filter_id, removed)
    return removed


def rebuild(services: "Services", tenant: str, progress: Progress = _quiet,
            every: int = PROGRESS_EVERY) -> str:
    """Recompute every counter group of the tenant from SQL now; returns a one-line report."""
    parts = []
    for family in FAMILIES:
        members = family.members(services, tenant)
        busy = 0
        for done, member in enumerate(members, 1):
            busy += not family.rebuild(services, tenant, member)
            if done % every == 0 and done < len(members):
                progress(f"{family.name}: {done}/{len(members)} rebuilt")
        parts.append(f"{family.name}: {len(members) - busy} rebuilt, {busy} busy")
    return f"tenant {tenant}: " + "; ".join(parts)


def verify(services: "Services", tenant: str, repair: bool = False, progress: Progress = _quiet,
           every: int = PROGRESS_EVERY) -> Drift:
    """Compare warm counters with SQL; with repair, rebuild each group that differs."""
    drift = Drift()
    for family in FAMILIES:
        members = family.members(services, tenant)
        for done, member in enumerate(members, 1):
            found = family.compare(services, tenant, member)
            drift.differences += found
            if found and repair:
                drift.repaired += family.rebuild(services, tenant, member)
            if done % every == 0 and done < len(members):
                progress(f"{family.name}: {done}/{len(members)} verified")
    return drift


def tenants(services: "Services") -> list[str]:
    """Every provisioned tenant, sorted (events and reads only reach provisioned tenants)."""
    with services.db.snapshot() as session:
        return list(session.scalars(select(Tenant.id).order_by(Tenant.id)))


# -- scheduled sampling verify ------------------------------------------------------------------
@dataclass(frozen=True)
class GroupDrift:
    """One counter group a sample found drifted (`member` as family.rebuild takes it)."""

    tenant: str
    family: str
    member: str
    differences: tuple[Difference, ...]

    @property
    def line(self) -> str:
        values = "; ".join(f"{d.field} redis={d.redis} sql={d.sql}" for d in self.differences)
        return f"tenant {self.tenant} {self.family} {self.differences[0].member}: {values}"


@dataclass
class SampleReport:
    """What one sampling verify did: tenants visited, groups compared, drifted groups found."""

    tenants: int = 0
    sampled: int = 0
    drifted: list[GroupDrift] = field(default_factory=list)


def sample_verify(services: "Services", size: int,
                  rng: random.Random | None = None) -> SampleReport:
    """Compare up to `size` random warm groups per tenant with SQL, logging each drifted group.

    Each compare holds the group's rebuild marker (as verify does) and skips groups with deltas
    in flight, so a difference is drift, not lag. Nothing is repaired: operators decide.
    """
    rng = rng or random.Random()
    report = SampleReport()
    for tenant in tenants(services):
        warm = [(family, member) for family in FAMILIES for member in family.warm(services, tenant)]
        report.tenants += 1
        for family, member in rng.sample(warm, min(size, len(warm))):
            report.sampled += 1
            found = family.compare(services, tenant, member)
            if found:
                drift = GroupDrift(tenant, family.name, member, tuple(found))
                log.warning("drift found by the sampling verify: %s", drift.line)
                report.drifted.append(drift)
    return report
