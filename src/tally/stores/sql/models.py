"""SQLAlchemy models: the source of truth. Timestamps are integer epoch milliseconds (UTC)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Model(DeclarativeBase):
    pass


class Tenant(Model):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    realm: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The last watermark issued: bumped (row-locked to commit) by each write with outbox rows.
    watermark: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Ticket(Model):
    """Our copy of a ticket; a delete keeps the row as a tombstone so stale upserts stay ignored."""

    __tablename__ = "tickets"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str | None] = mapped_column(String(20))
    priority: Mapped[str | None] = mapped_column(String(20))
    team_id: Mapped[str | None] = mapped_column(String(64))
    assignee_id: Mapped[str | None] = mapped_column(String(64))
    requester_id: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(100))
    # jsonb on PostgreSQL (migration 0003): a tag filter is `tags ? 'tag'`, no per-row parse.
    tags: Mapped[list[str]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"),
                                            default=list)
    is_support_request: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int | None] = mapped_column(BigInteger)
    due_at: Mapped[int | None] = mapped_column(BigInteger)
    sla_due_at: Mapped[int | None] = mapped_column(BigInteger)

    # The scope indexes serve cold counts of narrow views (an agent's teams, a requester);
    # migration 0002 builds them CONCURRENTLY on PostgreSQL.
    __table_args__ = (Index("ix_tickets_tenant_live", "tenant_id", "deleted"),
                      Index("ix_tickets_tenant_team", "tenant_id", "team_id"),
                      Index("ix_tickets_tenant_assignee", "tenant_id", "assignee_id"),
                      Index("ix_tickets_tenant_requester", "tenant_id", "requester_id"))


class Notification(Model):
    """A user's notification; `updated_at` is when its state last changed (drives lastUpdated)."""

    __tablename__ = "notifications"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(20))
    ticket_id: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[int] = mapped_column(BigInteger)
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_notifications_user_created", "tenant_id", "user_id", "created_at", "id"),
    )


class Filter(Model):
    """A system filter (owner_id null) or a user's custom filter."""

    __tablename__ = "filters"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    color: Mapped[str | None] = mapped_column(String(20))
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)


class SeenEvent(Model):
    """Every eventId accepted within the redelivery horizon, so a redelivery is a duplicate
    (SEEN_EVENTS_RETENTION_SECONDS; older ids are pruned by received_at)."""

    __tablename__ = "seen_events"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    received_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_seen_events_received", "received_at"),)


class OutboxRow(Model):
    """A delta owed to the counters of one group; applied_at is set once Redis has it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    group_key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[int | None] = mapped_column(BigInteger)
    # The tenants.watermark its transaction took; every row of one transaction shares it.
    watermark: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (
        Index("ix_outbox_pending", "applied_at", "tenant_id", "id"),
        Index("ix_outbox_group", "tenant_id", "group_key", "applied_at"),
    )
