"""Tables of the central schema `telemetry_ingest`: the tenant registry, device MQTT credentials, and messages
that name no known tenant (they have no tenant schema to go to)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from telemetry_ingest.db import Base

DEFAULT_RETENTION_DAYS = 365
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650
NAME_MAX_LENGTH = 200


class Tenant(Base):
    """A customer whose devices publish telemetry; its data lives in schema `schema_name`."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    schema_name: Mapped[str] = mapped_column(Text, unique=True, comment="tenant_<slug>")
    retention_days: Mapped[int] = mapped_column(
        Integer, server_default=str(DEFAULT_RETENTION_DAYS), comment="readings older than this are dropped"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            f"retention_days BETWEEN {MIN_RETENTION_DAYS} AND {MAX_RETENTION_DAYS}", name="retention_days_range"
        ),
        CheckConstraint("schema_name = 'tenant_' || slug", name="schema_name_from_slug"),
    )


class DeviceCredential(Base):
    """MQTT username and hashed secret of one device; at most one active (not revoked) per device."""

    __tablename__ = "device_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_slug: Mapped[str] = mapped_column(Text, ForeignKey("tenants.slug", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(Text, unique=True, comment="<tenant>:<device_id>")
    secret_hash: Mapped[str] = mapped_column(Text, comment="sha256 hex of the secret")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "uq_device_credentials_active",
            "tenant_slug",
            "device_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index("ix_device_credentials_tenant_slug_device_id", "tenant_slug", "device_id"),
    )


class UnroutedMessage(Base):
    """A message that names no known tenant, kept for inspection."""

    __tablename__ = "unrouted_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str] = mapped_column(Text, comment="mqtt | http")
    topic: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_unrouted_messages_received_at", "received_at"),)
