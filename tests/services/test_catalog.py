"""The filter catalog: resolving ids per caller, the per-tenant cache, and its staleness bound."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from tally.core.conditions import parse_definition
from tally.services.catalog import TTL_SECONDS, FilterCatalog, load_tenant, well_formed
from tally.errors import Forbidden, NotFound, ValidationFailed
from tally.services.container import build_caches
from tally.services.tenants import create_tenant
from tally.stores.sql import filters as store
from tally.stores.sql.db import Database
from tally.stores.sql.models import Filter

pytestmark = pytest.mark.both_databases

VIP = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}
NOW = datetime(2025, 7, 10, 12, 34, 56, tzinfo=timezone.utc)


def _caches():
    """The catalog's two caches, as an app builds them."""
    caches = build_caches({})
    return caches.filters, caches.resolved


@dataclass
class FakeServices:
    db: Database
    clock: object = lambda: NOW


@dataclass
class Ticks:
    """A monotonic clock the test moves by hand."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class CountingLoader:
    """The real loader, counting how often the catalog goes to SQL."""

    calls: list[str] = field(default_factory=list)

    def __call__(self, services, tenant):
        self.calls.append(tenant)
        return load_tenant(services, tenant)


@pytest.fixture
def services(db_url):
    svc = FakeServices(Database(db_url))
    yield svc
    svc.db.engine.dispose()


@pytest.fixture
def tenant(services) -> str:
    tenant = str(uuid.uuid4())
    create_tenant(services.db, tenant, "Tenant", "dev")
    return tenant


@pytest.fixture
def ticks():
    return Ticks()


@pytest.fixture
def loads():
    return CountingLoader()


@pytest.fixture
def catalog(ticks, loads):
    return FilterCatalog(*_caches(), monotonic=ticks, loader=loads)


def insert(services, tenant: str, owner: str, name: str = "VIP", shared: bool = False) -> str:
    """A filter written straight to SQL, as another process would, behind the catalog's back."""
    with services.db.write() as session:
        return store.create_filter(session, tenant, owner, name, None, shared, VIP, 1).id


def rename(services, tenant: str, filter_id: str, name: str) -> None:
    with services.db.write() as session:
        session.execute(update(Filter).where(Filter.tenant_id == tenant, Filter.id == filter_id)
                        .values(name=name))


def test_system_and_own_filters_resolve_with_their_details_and_definition(
        services, tenant, catalog):
    own = insert(services, tenant, "alice")
    found, invalid = catalog.resolve(services, tenant, "alice", ["all", "3745", "7471", own])
    assert invalid == []
    assert found["3745"].details() == {"id": "3745", "name": "Open", "type": "status",
                                       "color": "#3B82F6"}
    assert found["7471"].details() == {"id": "7471", "name": "Assigned to Me",
                                       "type": "assignment"}
    assert found[own].details() == {"id": own, "name": "VIP", "type": "custom"}
    assert found[own].definition == parse_definition(VIP)
    assert found["all"].definition.static_matches({}, None)


def test_a_second_resolve_within_the_ttl_is_served_from_the_cache(services, tenant, catalog,
                                                                  loads, ticks):
    catalog.resolve(services, tenant, "alice", ["3745"])
    rename(services, tenant, "3745", "Renamed")
    ticks.now += TTL_SECONDS - 0.5
    found, _ = catalog.resolve(services, tenant, "alice", ["3745"])
    assert found["3745"].name == "Open"
    assert len(loads.calls) == 1


def test_the_same_ids_resolve_again_without_visiting_them_while_the_copy_holds(
        services, tenant, catalog, loads, ticks, monkeypatch):
    own = insert(services, tenant, "alice")
    ids = ["all", "3745", own]
    first, _ = catalog.resolve(services, tenant, "alice", ids)
    checked = []
    monkeypatch.setattr("tally.services.catalog.well_formed",
                        lambda raw: checked.append(raw) or well_formed(raw))
    again, invalid = catalog.resolve(services, tenant, "alice", ids)
    assert (again, invalid, checked) == (first, [], [])
    assert catalog.resolve(services, tenant, "bob", ids)[1] == [own]  # not alice's answer
    rename(services, tenant, "3745", "Renamed")
    ticks.now += TTL_SECONDS + 0.5  # a new copy of the tenant: resolved afresh from it
    assert catalog.resolve(services, tenant, "alice", ids)[0]["3745"].name == "Renamed"
    assert len(loads.calls) == 2


def test_after_the_ttl_the_tenant_is_read_again(services, tenant, catalog, loads, ticks):
    catalog.resolve(services, tenant, "alice", ["3745"])
    rename(services, tenant, "3745", "Renamed")
    ticks.now += TTL_SECONDS
    found, _ = catalog.resolve(services, tenant, "alice", ["3745"])
    assert found["3745"].name == "Renamed"
    assert len(loads.calls) == 2


def test_an_id_missing_from_the_cache_reloads_once_and_then_resolves(services, tenant, catalog,
                                                                     loads):
    catalog.resolve(services, tenant, "alice", ["3745"])
    created_elsewhere = insert(services, tenant, "alice")
    found, invalid = catalog.resolve(services, tenant, "alice", [created_elsewhere])
    assert (list(found), invalid) == ([created_elsewhere], [])
    assert len(loads.calls) == 2


def test_unknown_ids_cost_one_reload_per_call_and_are_reported_once(services, tenant, catalog,
                                                                    loads):
    catalog.resolve(services, tenant, "alice", ["3745"])
    unknown = [str(uuid.uuid4()), "9999", "_open"]
    found, invalid = catalog.resolve(services, tenant, "alice", unknown + unknown + ["3745"])
    assert invalid == unknown
    assert list(found) == ["3745"]
    assert len(loads.calls) == 2


def test_a_cold_cache_does_not_reload_again_for_an_unknown_id(services, tenant, catalog, loads):
    _, invalid = catalog.resolve(services, tenant, "alice", [str(uuid.uuid4())])
    assert len(invalid) == 1
    assert len(loads.calls) == 1


@pytest.mark.parametrize("bad", ["", "not a filter", "3745; drop", "x" * 65, "ALL",
                                 "a7069dca-b9b1-4bf5-9a41-20dd75bf6f6",
                                 "A7069DCA-B9B1-4BF5-9A41-20DD75BF6F62"])
def test_malformed_ids_are_invalid_without_a_reload(services, tenant, catalog, loads, bad):
    catalog.resolve(services, tenant, "alice", ["3745"])
    found, invalid = catalog.resolve(services, tenant, "alice", [bad])
    assert (found, invalid) == ({}, [bad])
    assert len(loads.calls) == 1


def test_another_users_private_filter_is_invalid_but_a_shared_one_resolves(services, tenant,
                                                                           catalog):
    private = insert(services, tenant, "bob", "Bob private")
    shared = insert(services, tenant, "bob", "Bob shared", shared=True)
    found, invalid = catalog.resolve(services, tenant, "alice", [private, shared])
    assert (list(found), invalid) == ([shared], [private])
    found, invalid = catalog.resolve(services, tenant, "bob", [private, shared])
    assert (sorted(found), invalid) == (sorted([private, shared]), [])


def test_another_tenants_filter_is_invalid(services, tenant, catalog):
    other = str(uuid.uuid4())
    create_tenant(services.db, other, "Other", "dev")
    theirs = insert(services, other, "alice", shared=True)
    assert catalog.resolve(services, tenant, "alice", [theirs]) == ({}, [theirs])


def test_ids_must_match_exactly_as_listed(services, tenant, catalog):
    own = insert(services, tenant, "alice")
    assert catalog.resolve(services, tenant, "alice", [own.upper()]) == ({}, [own.upper()])
    assert well_formed(own) and well_formed("all") and well_formed("3745")
    assert not well_formed(42) and not well_formed(own.upper())
    for padded in (own + "\n", "all\n", "3745\n", " 3745"):  # not a stored id: no reload
        assert not well_formed(padded)


def test_a_stored_definition_that_no_longer_parses_is_skipped(services, tenant, catalog):
    broken = insert(services, tenant, "alice")
    with services.db.write() as session:
        session.execute(update(Filter).where(Filter.id == broken)
                        .values(conditions={"all": [{"field": "nope", "op": "eq"}]}))
    assert catalog.resolve(services, tenant, "alice", [broken]) == ({}, [broken])
    assert broken not in [item.id for item in catalog.list_visible(services, tenant, "alice")]


def test_create_and_delete_through_the_catalog_take_effect_at_once(services, tenant, catalog,
                                                                   loads):
    catalog.resolve(services, tenant, "alice", ["3745"])
    created = catalog.create(services, tenant, "alice", "VIP", "#112233", False,
                             parse_definition(VIP))
    assert (created.type, created.color, created.shared, created.owner_id) == (
        "custom", "#112233", False, "alice")
    assert uuid.UUID(created.id).version == 4
    assert list(catalog.resolve(services, tenant, "alice", [created.id])[0]) == [created.id]
    assert catalog.delete(services, tenant, "alice", created.id) == created.id
    assert catalog.resolve(services, tenant, "alice", [created.id]) == ({}, [created.id])
    assert len(loads.calls) == 3  # first resolve, after create, after delete: no TTL wait


def test_another_process_stops_resolving_a_deleted_filter_within_the_ttl(services, tenant,
                                                                         catalog, ticks):
    elsewhere = FilterCatalog(*_caches(), monotonic=ticks)
    fid = insert(services, tenant, "alice")
    assert fid in elsewhere.resolve(services, tenant, "alice", [fid])[0]
    catalog.delete(services, tenant, "alice", fid)
    assert fid in elsewhere.resolve(services, tenant, "alice", [fid])[0]  # stale, within TTL
    ticks.now += TTL_SECONDS
    assert elsewhere.resolve(services, tenant, "alice", [fid]) == ({}, [fid])


def test_delete_refuses_system_and_others_filters_and_hides_private_ones(services, tenant,
                                                                         catalog):
    private = insert(services, tenant, "bob")
    shared = insert(services, tenant, "bob", shared=True)
    with pytest.raises(Forbidden):
        catalog.delete(services, tenant, "alice", "3745")
    with pytest.raises(Forbidden):
        catalog.delete(services, tenant, "alice", shared)
    for missing in (private, str(uuid.uuid4()), "not-an-id"):
        with pytest.raises(NotFound):
            catalog.delete(services, tenant, "alice", missing)
    visible_to_bob = [item.id for item in catalog.list_visible(services, tenant, "bob")]
    assert {private, shared, "3745"} <= set(visible_to_bob)


def test_invalidate_makes_the_next_resolve_read_sql(services, tenant, catalog, loads):
    catalog.resolve(services, tenant, "alice", ["3745"])
    rename(services, tenant, "3745", "Renamed")
    catalog.invalidate(tenant)
    assert catalog.resolve(services, tenant, "alice", ["3745"])[0]["3745"].name == "Renamed"
    assert len(loads.calls) == 2


def test_an_owner_may_hold_only_so_many_custom_filters(services, tenant):
    catalog = FilterCatalog(*_caches(), max_per_user=2)
    for name in ("one", "two"):
        catalog.create(services, tenant, "alice", name, None, False, parse_definition(VIP))
    with pytest.raises(ValidationFailed, match="already have 2 custom filters"):
        catalog.create(services, tenant, "alice", "three", None, False, parse_definition(VIP))
    assert catalog.create(services, tenant, "bob", "one", None, False, parse_definition(VIP))
    names = [item.name for item in catalog.list_visible(services, tenant, "alice")]
    assert names.count("three") == 0 and {"one", "two"} <= set(names)
