"""Provisioning tenants: the tenant row and its system filters, in one transaction."""
from __future__ import annotations

from tally.core.clock import epoch_ms, utc_now
from tally.core.filters import SYSTEM_FILTERS, FilterSpec
from tally.stores.sql.db import Database
from tally.stores.sql.models import Filter, Tenant


def filter_row(tenant_id: str, spec: FilterSpec, position: int, now: int,
               owner_id: str | None = None, shared: bool = False) -> Filter:
    return Filter(tenant_id=tenant_id, id=spec.id, name=spec.name, kind=spec.type,
                  color=spec.color, conditions=spec.conditions, owner_id=owner_id,
                  shared=shared, position=position, created_at=now)


def create_tenant(db: Database, tenant_id: str, name: str, realm: str) -> bool:
    """Create the tenant and its system filters unless it exists; False when it already did."""
    now = epoch_ms(utc_now())
    with db.write() as session:
        if session.get(Tenant, tenant_id) is not None:
            return False
        session.add(Tenant(id=tenant_id, name=name, realm=realm, created_at=now))
        session.add_all(filter_row(tenant_id, spec, position, now)
                        for position, spec in enumerate(SYSTEM_FILTERS))
    return True


def tenant_realm(db: Database, tenant_id: str) -> str | None:
    """The realm the tenant is provisioned in; None when it is not provisioned."""
    with db.snapshot() as session:
        row = session.get(Tenant, tenant_id)
        return row.realm if row is not None else None
