"""The filters a caller may name: listed, created and deleted in SQL, resolved through a cache.

Each app holds one `FilterCatalog` (`Services.filter_catalog`); `resolve` is what the
ticket-count path calls. The catalog keeps, per tenant, every filter row parsed into a
`ResolvedFilter` for `catalog_ttl(POLL_INTERVAL)` (TTL_SECONDS, 5 s, or the poll interval when
that is shorter), and applies the caller's visibility on each call.
Staleness bound: a create or delete made through a catalog drops that catalog's copy at once;
another process sees a new filter at once too (an id missing from its copy reloads the tenant
once before it is declared unknown), and stops resolving a deleted one within that TTL: within
one poll interval (X-Poll-Interval), so a client's next poll after a delete gets its 422 from
every worker. (Exact everywhere before the DELETE answers would cost every sidebar read a
check of a shared version; docs/decisions.md.)
Listing (`list_visible`) always reads SQL, so GET /filters is never stale. Ids match exactly:
`all`, digits, or a lowercase UUID as GET /filters returns it; anything else is malformed.
While the database is unavailable, a tenant loaded before keeps its last known filters (SQL is
retried every TTL_SECONDS); an id missing from them, or a tenant never loaded, raises the error.
"""
from __future__ import annotations

import itertools
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Protocol

from sqlalchemy.exc import SQLAlchemyError

from tally.core.cache import Cache
from tally.core.clock import Clock, epoch_ms
from tally.core.conditions import Definition, parse_definition
from tally.core.model import CANONICAL_UUID
from tally.errors import DefinitionError, NotFound, ValidationFailed
from tally.stores.sql import filters as store
from tally.services.outages import Outage, is_unavailable
from tally.stores.sql.db import Database
from tally.stores.sql.models import Filter

log = logging.getLogger("tally.services.catalog")

TTL_SECONDS = 5.0
MAX_FILTERS_PER_USER = 500  # bounds what every per-tenant cache load carries
_SYSTEM_ID = re.compile(r"all|[0-9]{1,18}")


def catalog_ttl(poll_interval: float) -> float:
    """How long a process trusts its copy of a tenant's filters: at most one poll interval."""
    return min(TTL_SECONDS, float(poll_interval))


class CatalogServices(Protocol):
    """What the catalog needs from the app's services: the database and the clock."""

    db: Database
    clock: Clock


@dataclass(frozen=True)
class ResolvedFilter:
    """A filter ready to count: its listing fields, parsed definition and owner (None = system)."""

    id: str
    name: str
    type: str
    color: str | None
    definition: Definition
    owner_id: str | None = None
    shared: bool = False

    @property
    def is_system(self) -> bool:
        return self.owner_id is None

    def visible_to(self, user: str) -> bool:
        return self.owner_id is None or self.owner_id == user or self.shared

    def details(self) -> dict[str, Any]:
        """The ticket count's `filterDetails` entry: id, name, type and color where it has one."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.color is not None:
            out["color"] = self.color
        return out


def well_formed(raw: Any) -> bool:
    """True for the shapes tally gives filter ids: `all`, digits, or a lowercase UUID."""
    return isinstance(raw, str) and bool(_SYSTEM_ID.fullmatch(raw) or CANONICAL_UUID.fullmatch(raw))


def from_row(row: Filter) -> ResolvedFilter | None:
    """A row as a ResolvedFilter; None (logged) if its stored definition no longer parses."""
    try:
        definition = parse_definition(row.conditions, path=f"filter {row.id}")
    except DefinitionError as error:
        log.warning("tenant %s: filter %s skipped, bad definition: %s", row.tenant_id, row.id,
                    error.message)
        return None
    return ResolvedFilter(row.id, row.name, row.kind, row.color, definition, row.owner_id,
                          bool(row.shared))


def load_tenant(services: CatalogServices, tenant: str) -> dict[str, ResolvedFilter]:
    """Every filter of the tenant, whoever owns it, by id (the cache's unit)."""
    with services.db.snapshot() as session:
        resolved = (from_row(row) for row in store.tenant_filters(session, tenant))
        return {item.id: item for item in resolved if item is not None}


Loader = Callable[[CatalogServices, str], Mapping[str, ResolvedFilter]]


class _Copy(NamedTuple):
    """One load of a tenant's filters; its generation tells what was resolved from it."""

    generation: int
    filters: Mapping[str, ResolvedFilter]


class FilterCatalog:
    """One app's filter resolution through its caches plus the list/create/delete operations
    that keep them honest.

    `filters` holds each tenant's copy until `ttl` passes by `monotonic`; `resolved` holds, by
    (tenant, user, ids), the answers without an invalid id while the tenant's copy is the one
    they were resolved from (its generation: a number, so an old answer never pins an old
    copy): a sidebar asks for the same ids every poll, and an answer is a pure function of
    that copy, the user and the ids."""

    def __init__(self, filters: Cache[str, _Copy],
                 resolved: Cache[tuple[str, str, tuple[str, ...]], dict[str, ResolvedFilter]],
                 ttl: float = TTL_SECONDS, monotonic: Callable[[], float] = time.monotonic,
                 loader: Loader = load_tenant, max_per_user: int = MAX_FILTERS_PER_USER):
        self.ttl = ttl
        self.max_per_user = max_per_user
        self.monotonic = monotonic
        self.loader = loader
        self._cache = filters
        self._resolved = resolved
        self._generations = itertools.count(1)  # next() is atomic: one number per load
        self._outage = Outage(log, "the filter catalog")

    # -- the count path ----------------------------------------------------------------------
    def resolve(self, services: CatalogServices, tenant: str, user: str,
                ids: Iterable[str]) -> tuple[dict[str, ResolvedFilter], list[str]]:
        """Map each requested id to its filter; ids not visible to `user` (unknown, malformed,
        another user's private filter) come back in `invalid_ids`, once each, in request order."""
        copy, reloaded = self._cached(services, tenant)
        key = (tenant, user, tuple(ids))
        answer = self._resolved.get(key, copy.generation)
        if answer is not None:
            return dict(answer), []
        found: dict[str, ResolvedFilter] = {}
        invalid: list[str] = []
        loaded = copy
        for raw in key[2]:
            if raw in found or raw in invalid:
                continue
            item = copy.filters.get(raw) if well_formed(raw) else None
            if item is None and well_formed(raw) and not reloaded:
                copy, reloaded = self._reload(services, tenant), True
                item = copy.filters.get(raw)
            if item is None or not item.visible_to(user):
                invalid.append(raw)
            else:
                found[raw] = item
        if not invalid and copy is loaded:
            self._resolved.put(key, dict(found), copy.generation)
        return found, invalid

    def reload(self, services: CatalogServices, tenant: str) -> Mapping[str, ResolvedFilter]:
        """Read the tenant's filters from SQL now and cache them."""
        return self._reload(services, tenant).filters

    def invalidate(self, tenant: str) -> None:
        """Forget the tenant's filters, so the next resolve reads SQL."""
        self._cache.pop(tenant)

    def _reload(self, services: CatalogServices, tenant: str) -> _Copy:
        filters = self.loader(services, tenant)
        self._outage.recovered()
        return self._cache.put(tenant, _Copy(next(self._generations), filters),
                               self.monotonic() + self.ttl)

    def _cached(self, services: CatalogServices, tenant: str) -> tuple[_Copy, bool]:
        """The tenant's filters and whether they were just loaded (then a miss is final)."""
        hit = self._cache.get(tenant, self.monotonic())
        if hit is not None:
            return hit, False
        last = self._cache.stale(tenant)
        try:
            return self._reload(services, tenant), True
        except SQLAlchemyError as error:
            if last is None or not is_unavailable(error):
                raise
            self._outage.failed(error)
            # the last known filters, until the next retry
            self._cache.put(tenant, last, self.monotonic() + self.ttl)
            return last, False  # not final: a miss retries SQL and fails honestly

    # -- the filters resource -----------------------------------------------------------------
    def list_visible(self, services: CatalogServices, tenant: str,
                     user: str) -> list[ResolvedFilter]:
        """The filters `user` sees (system, own, shared) in display order, read from SQL now."""
        with services.db.snapshot() as session:
            rows = store.visible_filters(session, tenant, user)
            resolved = [from_row(row) for row in rows]
        return [item for item in resolved if item is not None]

    def create(self, services: CatalogServices, tenant: str, owner: str, name: str,
               color: str | None, shared: bool, definition: Definition) -> ResolvedFilter:
        """Store `owner`'s custom filter (definition in canonical form); raises ValidationFailed
        once the owner already holds `max_per_user` of them."""
        with services.db.write() as session:
            if store.owned_count(session, tenant, owner) >= self.max_per_user:
                raise ValidationFailed(f"You already have {self.max_per_user} custom filters; "
                                       "delete one first", {"limit": self.max_per_user})
            row = store.create_filter(session, tenant, owner, name, color, shared,
                                      definition.to_obj(), epoch_ms(services.clock()))
            created = ResolvedFilter(row.id, row.name, row.kind, row.color, definition,
                                     row.owner_id, bool(row.shared))
        self.invalidate(tenant)
        return created

    def delete(self, services: CatalogServices, tenant: str, owner: str, filter_id: str) -> str:
        """Delete `owner`'s custom filter and return its id; NotFound (404) when the caller sees
        no such filter, Forbidden (403) for a system filter or another user's shared one."""
        deleted = False
        if well_formed(filter_id):
            with services.db.write() as session:
                deleted = store.delete_filter(session, tenant, owner, filter_id)
        if not deleted:
            raise NotFound(f"Filter {filter_id} does not exist", {"id": filter_id})
        self.invalidate(tenant)  # after the commit, so no reload can cache the deleted row
        return filter_id
