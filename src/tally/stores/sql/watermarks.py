"""A tenant's watermarks in SQL: the last issued (tenants.watermark) and the last fully applied.

`bump` runs in the transaction that writes outbox rows, just before them: its UPDATE holds the
tenant's row lock to commit, so a tenant's watermarks commit in order, and a snapshot that sees
watermark W sees every outbox row stamped W or less (SQLite's one writer gives the same order).
Watermarks issued start at 1; 0 claims nothing (rows written before migration 0005 carry it).
"""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tally.stores.sql.models import OutboxRow, Tenant


def bump(session: Session, tenant: str) -> int:
    """Issue the tenant's next watermark (the caller's transaction writes its outbox rows with
    it). A tenant without a row (never provisioned: the guard lets no request of it through)
    is issued 0, the watermark that claims nothing."""
    value = session.execute(update(Tenant).where(Tenant.id == tenant)
                            .values(watermark=Tenant.watermark + 1)
                            .returning(Tenant.watermark)).scalar()
    return int(value or 0)


def issued(session: Session, tenant: str) -> int:
    """The last watermark issued to the tenant as the session's snapshot sees it (0: none, or
    no such tenant): everything the snapshot shows of the tenant is reflected up to it."""
    return int(session.scalar(select(Tenant.watermark).where(Tenant.id == tenant)) or 0)


def applied(session: Session, tenant: str) -> int:
    """The highest W such that every outbox row of the tenant stamped W or less is applied:
    one below the oldest pending row's, or the last issued when none is pending. One statement,
    so one snapshot even under READ COMMITTED."""
    oldest_pending = (select(func.min(OutboxRow.watermark) - 1)
                      .where(OutboxRow.tenant_id == tenant, OutboxRow.applied_at.is_(None))
                      .scalar_subquery())
    return int(session.scalar(select(func.coalesce(oldest_pending, Tenant.watermark))
                              .where(Tenant.id == tenant)) or 0)
