"""Provisioning tenants: the tenant row and its system filters, in one transaction."""
from __future__ import annotations

from tally.clock import epoch_ms, utc_now
from tally.stores.db import Database
from tally.stores.models import Tenant


def create_tenant(db: Database, tenant_id: str, name: str, realm: str) -> bool:
    """Create the tenant if it does not exist; returns False when it already did."""
    with db.write() as session:
        if session.get(Tenant, tenant_id) is not None:
            return False
        session.add(Tenant(id=tenant_id, name=name, realm=realm, created_at=epoch_ms(utc_now())))
    return True
