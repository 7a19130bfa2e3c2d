"""Positions: the current one per tag (with the engine's state), the changes over time, presence sessions.

Zone, floor, building and gateway ids are copied, not referenced: history says where a tag was, even after the
layout changed or a device went. Rows go with their tag.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Double, ForeignKey, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base

PRESENT = "present"
UNKNOWN = "unknown"


class _Place:
    gateway_id: Mapped[int | None] = mapped_column(BigInteger)
    zone_id: Mapped[int | None] = mapped_column(BigInteger)
    floor_id: Mapped[int | None] = mapped_column(BigInteger)
    building_id: Mapped[int | None] = mapped_column(BigInteger)
    x_px: Mapped[float | None] = mapped_column(Double, comment="the gateway's point on the floor plan")
    y_px: Mapped[float | None] = mapped_column(Double)
    rssi: Mapped[float | None] = mapped_column(Double, comment="smoothed RSSI at the gateway, offset applied")


class TagPosition(_Place, Base):
    """Where a tag is now, and the engine's state for it (updated under this row's lock)."""

    __tablename__ = "tag_positions"
    __table_args__ = (
        CheckConstraint("status IN ('present', 'unknown')", name="status_known"),
        Index("ix_tag_positions_floor_id", "floor_id"),
        Index("ix_tag_positions_status_last_seen", "status", "last_seen_at"),
    )

    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int | None] = mapped_column(BigInteger, comment="who carried the tag at the last change")
    status: Mapped[str] = mapped_column(String(16), server_default=UNKNOWN, comment="present | unknown")
    lead_db: Mapped[float | None] = mapped_column(Double, comment="smoothed lead over the next strongest gateway")
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), comment="at this place since")
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PositionChange(_Place, Base):
    """A tag moved (to another gateway, or to unknown); one row per change, not per reading."""

    __tablename__ = "position_changes"
    __table_args__ = (
        Index("ix_position_changes_person_at", "person_id", "at"),
        Index("ix_position_changes_tag_at", "tag_id", "at"),
        Index("ix_position_changes_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


OPEN_SESSION_INDEX = "uq_presence_sessions_open"
PERIOD_INDEX = "ix_presence_sessions_period"


class PresenceSession(Base):
    """A person in a zone, from when they entered to when they left (open while they are there)."""

    __tablename__ = "presence_sessions"
    __table_args__ = (
        Index(OPEN_SESSION_INDEX, "tag_id", unique=True, postgresql_where=text("ended_at IS NULL")),
        Index("ix_presence_sessions_person_started", "person_id", "started_at"),
        Index("ix_presence_sessions_zone_started", "zone_id", "started_at"),
        Index("ix_presence_sessions_started", "started_at"),
        # Reports ask for the sessions overlapping a period: `tstzrange(...) && tstzrange(from, to)`.
        Index(PERIOD_INDEX, func.tstzrange(text("started_at"), text("ended_at")), postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigInteger)
    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"))
    zone_id: Mapped[int] = mapped_column(BigInteger)
    floor_id: Mapped[int | None] = mapped_column(BigInteger)
    building_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
