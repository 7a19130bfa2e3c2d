"""Incidents, their history, assignees, messages and attachments; support groups; incident rules.

Users (assignees, authors, members) are users of the identity API, referenced by id only: the identity schema is
another service's, so there is no foreign key to it, and a user deleted there leaves the id behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, deferred, mapped_column

from rtls_cambus.db import Base

SEVERITY_CHECK = "severity IN ('low', 'medium', 'high', 'critical')"
STATUS_CHECK = "status IN ('open', 'acknowledged', 'in_progress', 'resolved', 'closed')"


class SupportGroup(Base):
    __tablename__ = "support_groups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SupportGroupMember(Base):
    __tablename__ = "support_group_members"

    group_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("support_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True, comment="identity user id")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IncidentRule(Base):
    __tablename__ = "incident_rules"
    __table_args__ = (CheckConstraint(SEVERITY_CHECK, name="severity"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    event_type: Mapped[str] = mapped_column(String(200), index=True, comment="the suite event type it matches")
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default="[]", comment="[{path, op, value}], all must hold"
    )
    title_template: Mapped[str] = mapped_column(String(500), comment="{dotted.path} substituted from the payload")
    severity: Mapped[str] = mapped_column(String(20))
    support_group_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("support_groups.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(SEVERITY_CHECK, name="severity"),
        CheckConstraint(STATUS_CHECK, name="status"),
        UniqueConstraint("rule_id", "source_event_id"),
        Index("ix_incidents_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(20), server_default="open", index=True)
    building_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("buildings.id", ondelete="SET NULL"), index=True
    )
    floor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("floors.id", ondelete="SET NULL"), index=True)
    zone_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("zones.id", ondelete="SET NULL"), index=True)
    support_group_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("support_groups.id", ondelete="SET NULL"), index=True
    )
    rule_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("incident_rules.id", ondelete="SET NULL"), comment="the rule that opened it"
    )
    source_event_id: Mapped[str | None] = mapped_column(String(64), comment="the event that opened it")
    source_event_type: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(BigInteger, comment="identity user id; null when a rule opened it")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    in_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IncidentAssignee(Base):
    __tablename__ = "incident_assignees"

    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True, comment="identity user id")
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IncidentStatusChange(Base):
    __tablename__ = "incident_status_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20), comment="null for the opening")
    to_status: Mapped[str] = mapped_column(String(20))
    changed_by: Mapped[int | None] = mapped_column(BigInteger, comment="identity user or API key id")
    changed_by_kind: Mapped[str] = mapped_column(String(20), comment="user, api_key or rule")
    changed_by_name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IncidentMessage(Base):
    __tablename__ = "incident_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(BigInteger)
    author_kind: Mapped[str] = mapped_column(String(20))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IncidentAttachment(Base):
    __tablename__ = "incident_attachments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    stored_name: Mapped[str] = mapped_column(String(100), unique=True, comment="made by the server, never the client's")
    original_name: Mapped[str | None] = mapped_column(String(255), comment="as uploaded, for display only")
    content_type: Mapped[str] = mapped_column(String(100), comment="from the magic bytes")
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    uploaded_by: Mapped[int] = mapped_column(BigInteger)
    uploaded_by_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
