"""The filter repository: visibility, order, creation, deletion rights and tenant isolation."""
from __future__ import annotations

import uuid

import pytest

from tally.core.filters import SYSTEM_FILTERS
from tally.errors import Forbidden
from tally.services.tenants import create_tenant
from tally.stores.sql import filters as store
from tally.stores.sql.db import Database
from tally.stores.sql.models import Filter

pytestmark = pytest.mark.both_databases

VIP = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}
T0 = 1_752_150_896_789


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def tenant(db) -> str:
    tenant = str(uuid.uuid4())
    create_tenant(db, tenant, "Tenant A", "dev")
    return tenant


def make(db: Database, tenant: str, owner: str, name: str, shared: bool = False,
         at: int = T0) -> str:
    with db.write() as session:
        return store.create_filter(session, tenant, owner, name, None, shared, VIP, at).id


def visible(db: Database, tenant: str, user: str) -> list[tuple[str, str]]:
    with db.snapshot() as session:
        return [(row.id, row.name) for row in store.visible_filters(session, tenant, user)]


def exists(db: Database, tenant: str, filter_id: str) -> bool:
    with db.snapshot() as session:
        return session.get(Filter, (tenant, filter_id)) is not None


def test_a_new_tenant_sees_exactly_the_system_filters_in_catalogue_order(db, tenant):
    assert visible(db, tenant, "user-1") == [(spec.id, spec.name) for spec in SYSTEM_FILTERS]


def test_system_rows_carry_the_documents_ids_kinds_and_colours(db, tenant):
    with db.snapshot() as session:
        rows = {row.id: row for row in store.visible_filters(session, tenant, "user-1")}
        open_, mine = rows["3745"], rows["7471"]
        assert (open_.name, open_.kind, open_.color, open_.owner_id) == (
            "Open", "status", "#3B82F6", None)
        assert (mine.name, mine.kind, mine.color) == ("Assigned to Me", "assignment", None)


def test_a_user_sees_own_and_shared_custom_filters_but_not_others_private_ones(db, tenant):
    own = make(db, tenant, "alice", "Alice private", at=T0)
    shared = make(db, tenant, "bob", "Bob shared", shared=True, at=T0 + 1)
    make(db, tenant, "bob", "Bob private", at=T0 + 2)
    custom = visible(db, tenant, "alice")[len(SYSTEM_FILTERS):]
    assert custom == [(own, "Alice private"), (shared, "Bob shared")]
    bobs = [name for _, name in visible(db, tenant, "bob")[len(SYSTEM_FILTERS):]]
    assert bobs == ["Bob shared", "Bob private"]


def test_custom_filters_follow_the_system_ones_oldest_first(db, tenant):
    newer = make(db, tenant, "alice", "Newer", at=T0 + 10)
    older = make(db, tenant, "alice", "Older", at=T0)
    ids = [fid for fid, _ in visible(db, tenant, "alice")]
    assert ids[:len(SYSTEM_FILTERS)] == [spec.id for spec in SYSTEM_FILTERS]
    assert ids[len(SYSTEM_FILTERS):] == [older, newer]


def test_create_stores_a_custom_row_under_a_fresh_uuid4(db, tenant):
    with db.write() as session:
        row = store.create_filter(session, tenant, "alice", "Red VIPs", "#FF0000", True, VIP, T0)
    assert uuid.UUID(row.id).version == 4
    with db.snapshot() as session:
        stored = session.get(Filter, (tenant, row.id))
        assert (stored.name, stored.kind, stored.color, stored.owner_id, stored.shared) == (
            "Red VIPs", "custom", "#FF0000", "alice", True)
        assert (stored.conditions, stored.created_at) == (VIP, T0)
        assert store.owned_count(session, tenant, "alice") == 1
        assert store.owned_count(session, tenant, "bob") == 0


def test_a_tenants_custom_filters_never_appear_in_another_tenant(db, tenant):
    other = str(uuid.uuid4())
    create_tenant(db, other, "Tenant B", "dev")
    make(db, tenant, "alice", "A's shared", shared=True)
    assert visible(db, other, "alice") == [(spec.id, spec.name) for spec in SYSTEM_FILTERS]
    with db.snapshot() as session:
        assert len(store.tenant_filters(session, other)) == len(SYSTEM_FILTERS)
        assert len(store.tenant_filters(session, tenant)) == len(SYSTEM_FILTERS) + 1


def test_an_owner_deletes_their_own_filter(db, tenant):
    fid = make(db, tenant, "alice", "Mine", shared=True)
    with db.write() as session:
        assert store.delete_filter(session, tenant, "alice", fid) is True
    assert not exists(db, tenant, fid)
    with db.write() as session:
        assert store.delete_filter(session, tenant, "alice", fid) is False


@pytest.mark.parametrize("filter_id", ["3745", "all"])
def test_a_system_filter_is_forbidden_to_delete(db, tenant, filter_id):
    with pytest.raises(Forbidden, match="system filter"):
        with db.write() as session:
            store.delete_filter(session, tenant, "alice", filter_id)
    assert exists(db, tenant, filter_id)


def test_another_users_shared_filter_is_forbidden_to_delete(db, tenant):
    fid = make(db, tenant, "bob", "Bob shared", shared=True)
    with pytest.raises(Forbidden, match="another user's filter"):
        with db.write() as session:
            store.delete_filter(session, tenant, "alice", fid)
    assert exists(db, tenant, fid)


def test_another_users_private_filter_looks_unknown_and_survives(db, tenant):
    fid = make(db, tenant, "bob", "Bob private")
    with db.write() as session:
        assert store.delete_filter(session, tenant, "alice", fid) is False
        assert store.delete_filter(session, tenant, "alice", str(uuid.uuid4())) is False
    assert exists(db, tenant, fid)


def test_delete_does_not_reach_into_another_tenant(db, tenant):
    other = str(uuid.uuid4())
    create_tenant(db, other, "Tenant B", "dev")
    fid = make(db, tenant, "alice", "Mine")
    with db.write() as session:
        assert store.delete_filter(session, other, "alice", fid) is False
    assert exists(db, tenant, fid)
