"""Every table of the `vision_orchestrator` schema, described once: the features read and write them, and the
Alembic environment imports this module to see them all.

- `inspection_types`: the catalogue of types machines declare and inspections ask for;
- `machines`, `machine_credentials`: the fleet and what each machine authenticates with;
- `heartbeats`: a time series partitioned by range of `received_at`, one partition per UTC day
  (`heartbeats_pYYYYMMDD`) plus a default one, so retention drops whole days;
- `inspections`, `inspection_status_history`, `inspection_results`: the work, every move of its status, and
  what machines reported.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vision_orchestrator.db import Base
from vision_orchestrator.identifiers import INSPECTION_ID_LENGTH, MACHINE_ID_LENGTH, TYPE_NAME_LENGTH
from vision_orchestrator.lifecycle import INSPECTION_STATUSES


class InspectionType(Base):
    __tablename__ = "inspection_types"

    name: Mapped[str] = mapped_column(String(TYPE_NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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
    webhook_secret: Mapped[str | None] = mapped_column(
        String(100),
        comment="Standard Webhooks key (whsec_...), kept to verify and sign; null for credentials issued before",
    )
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


PRIORITY_HIGHEST = 1
PRIORITY_LOWEST = 10
PRIORITY_DEFAULT = 5


FINISHED_PREDICATE = "status IN ('completed', 'failed')"
"""Finished inspections, spelled with literals: the planner matches a partial index on this predicate only when
a query states it in the same words, never through bound parameters."""


class Inspection(Base):
    __tablename__ = "inspections"

    id: Mapped[str] = mapped_column(String(INSPECTION_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    inspection_type: Mapped[str] = mapped_column(
        String(TYPE_NAME_LENGTH), ForeignKey("inspection_types.name", onupdate="CASCADE")
    )
    pipeline_config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    priority: Mapped[int] = mapped_column(Integer, server_default=str(PRIORITY_DEFAULT), comment="1 goes first")
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    target_machine_id: Mapped[str | None] = mapped_column(
        String(MACHINE_ID_LENGTH), ForeignKey("machines.id", ondelete="SET NULL")
    )
    assigned_machine_id: Mapped[str | None] = mapped_column(
        String(MACHINE_ID_LENGTH), ForeignKey("machines.id", ondelete="SET NULL")
    )
    lease: Mapped[int] = mapped_column(
        Integer, server_default="0", comment="raised on every assignment; a result carrying an older one is stale"
    )
    dispatch_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_dispatch_error: Mapped[str | None] = mapped_column(Text, comment="why the last send to a machine failed")
    next_dispatch_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="not before this time (backoff after a failed send)"
    )
    error_message: Mapped[str | None] = mapped_column(Text, comment="the machine's, when it failed")
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    queued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), comment="when it last became pending"
    )
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN {INSPECTION_STATUSES!r}", name="status"),
        CheckConstraint(f"priority BETWEEN {PRIORITY_HIGHEST} AND {PRIORITY_LOWEST}", name="priority_range"),
        Index("ix_inspections_queue", "priority", "queued_at", "id", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_inspections_on_machine",
            "assigned_machine_id",
            postgresql_where=text("status IN ('assigned', 'processing')"),
        ),
        Index("ix_inspections_status_created_at", "status", "created_at"),
        Index("ix_inspections_created_at", "created_at"),
        Index("ix_inspections_inspection_type", "inspection_type"),
        Index("ix_inspections_target_machine_id", "target_machine_id"),
        Index("ix_inspections_finished_at", "finished_at", postgresql_where=text(FINISHED_PREDICATE)),
    )


class InspectionStatusChange(Base):
    """One transition of an inspection: from what to what, when, on which machine, by whom and why."""

    __tablename__ = "inspection_status_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16), comment="null for the creation")
    to_status: Mapped[str] = mapped_column(String(16))
    machine_id: Mapped[str | None] = mapped_column(String(MACHINE_ID_LENGTH))
    actor: Mapped[str] = mapped_column(String(220), comment="user:<name>, api_key:<name>, machine:<id> or system")
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_inspection_status_history_inspection_id_id", "inspection_id", "id"),)


class InspectionResult(Base):
    """A result a machine reported; the same idempotency key for the same inspection is one result."""

    __tablename__ = "inspection_results"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    machine_id: Mapped[str] = mapped_column(String(MACHINE_ID_LENGTH))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    lease: Mapped[int | None] = mapped_column(Integer, comment="the assignment the result answers")
    status: Mapped[str] = mapped_column(String(16), comment="completed | failed")
    results: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error_message: Mapped[str | None] = mapped_column(Text)
    processing_time_seconds: Mapped[float | None] = mapped_column(Double)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), comment="the machine's own clock")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("inspection_id", "idempotency_key"),
        CheckConstraint("status IN ('completed', 'failed')", name="status"),
        Index("ix_inspection_results_machine_id_received_at", "machine_id", "received_at"),
    )


class DropReason(StrEnum):
    """Why a machine is told to let go of an inspection (the `reason` of the machine's cancel call)."""

    cancelled = "cancelled"
    reassigned = "reassigned"


class MachineDrop(Base):
    """A cancel or drop a machine is owed: the inspection was cancelled while on it, or given to another machine
    while it was offline. Kept after it is settled, with the machine's answer, so the telling is on record."""

    __tablename__ = "machine_drops"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, comment="the inspection's lease while it was on the machine")
    reason: Mapped[str] = mapped_column(String(16))
    tries: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32), comment="the machine's answer once settled")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("reason IN ('cancelled', 'reassigned')", name="reason"),
        Index("ix_machine_drops_owed", "machine_id", "id", postgresql_where=text("settled_at IS NULL")),
    )
