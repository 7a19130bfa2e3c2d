"""BLE tags and the history of who carried each one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True, comment="AA:BB:CC:DD:EE:FF")
    label: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


OPEN_ASSIGNMENT_INDEX = "uq_tag_assignments_open"
"""At most one open assignment (no `assigned_to`) per tag: one person at a time."""


class TagAssignment(Base):
    """Who carried a tag from when to when; the open row (no `assigned_to`) is the current holder."""

    __tablename__ = "tag_assignments"
    __table_args__ = (
        Index(OPEN_ASSIGNMENT_INDEX, "tag_id", unique=True, postgresql_where=text("assigned_to IS NULL")),
        Index("ix_tag_assignments_person_id", "person_id", "assigned_from"),
        CheckConstraint("assigned_to IS NULL OR assigned_to >= assigned_from", name="period_ordered"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("people.id", ondelete="RESTRICT"))
    assigned_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assigned_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
