"""Floor plans: one image per floor, with the scale and origin that place metres on its pixels."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Double, ForeignKey, Integer, LargeBinary, String, func
from sqlalchemy.orm import Mapped, deferred, mapped_column

from rtls_cambus.db import Base


class FloorPlan(Base):
    __tablename__ = "floor_plans"
    __table_args__ = (
        CheckConstraint("scale_px_per_m > 0", name="scale_positive"),
        CheckConstraint("width_px > 0 AND height_px > 0", name="dimensions_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    floor_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("floors.id", ondelete="CASCADE"), unique=True, comment="one plan per floor"
    )
    name: Mapped[str | None] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(40), comment="image/png | image/jpeg, from the magic bytes")
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), comment="hex digest of the image: its ETag")
    scale_px_per_m: Mapped[float] = mapped_column(Double, comment="pixels per metre")
    origin_x_px: Mapped[float] = mapped_column(Double, server_default="0", comment="pixel column of (0 m, 0 m)")
    origin_y_px: Mapped[float] = mapped_column(Double, server_default="0", comment="pixel row of (0 m, 0 m)")
    image: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
