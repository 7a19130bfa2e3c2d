"""Vision machines, their credentials, and the heartbeats they send (a time series partitioned by day)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vision_orchestrator.db import Base
from vision_orchestrator.identifiers import MACHINE_ID_LENGTH, TYPE_NAME_LENGTH


class MachineStatus(StrEnum):
    """What the machine last said of itself (`online`, `busy`), or `offline` when its heartbeats stopped."""

    online = "online"
    busy = "busy"
    offline = "offline"


MACHINE_STATUSES = tuple(status.value for status in MachineStatus)


class Machine(Base):
    __tablename__ = "machines"

    id: Mapped[str] = mapped_column(String(MACHINE_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    location: Mapped[str | None] = mapped_column(String(200), comment="site or area, e.g. 'Linha de Produção A'")
    line: Mapped[str | None] = mapped_column(String(200), comment="production line or cell, for `nearest`")
    ip_address: Mapped[str] = mapped_column(INET)
    port: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default=MachineStatus.offline.value)
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    maintenance: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    max_concurrent_inspections: Mapped[int] = mapped_column(Integer)
    current_inspections: Mapped[int] = mapped_column(
        Integer, server_default="0", comment="inspections assigned to it or processing, kept by every transition"
    )
    supported_inspection_types: Mapped[list[str]] = mapped_column(
        ARRAY(String(TYPE_NAME_LENGTH)), server_default=text("'{}'")
    )
    hardware_specs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("port BETWEEN 1 AND 65535", name="port_range"),
        CheckConstraint("max_concurrent_inspections > 0", name="positive_capacity"),
        CheckConstraint("current_inspections >= 0", name="current_not_negative"),
        CheckConstraint(f"status IN {MACHINE_STATUSES!r}", name="status"),
        Index("ix_machines_supported_inspection_types", "supported_inspection_types", postgresql_using="gin"),
        Index("ix_machines_status", "status"),
    )


class MachineCredential(Base):
    """One issued credential; rotating revokes the active one and adds a row, so the history stays."""

    __tablename__ = "machine_credentials"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, comment="SHA-256 of the whole credential")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "uq_machine_credentials_one_active",
            "machine_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class Heartbeat(Base):
    """A heartbeat as received. The table is partitioned by range of `received_at`, one partition per UTC day
    (`heartbeats_pYYYYMMDD`) plus a default one, so retention drops whole days."""

    __tablename__ = "heartbeats"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, server_default=func.now())
    machine_id: Mapped[str] = mapped_column(String(MACHINE_ID_LENGTH))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), comment="the machine's own clock")
    status: Mapped[str] = mapped_column(String(16))
    current_inspections: Mapped[int | None] = mapped_column(Integer)
    system_info: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    performance_metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    __table_args__ = (
        Index("ix_heartbeats_machine_id_received_at", "machine_id", "received_at"),
        {"postgresql_partition_by": "RANGE (received_at)"},
    )


__all__ = ["MACHINE_STATUSES", "Heartbeat", "Machine", "MachineCredential", "MachineStatus"]
