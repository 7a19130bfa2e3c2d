"""Zones: named areas of a floor, made of gateways (`devices.zone_id`) and optionally a polygon on the plan."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("floor_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    floor_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("floors.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    restricted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    polygon: Mapped[list[Any] | None] = mapped_column(JSONB, comment="[[x, y], ...] in plan pixels")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
