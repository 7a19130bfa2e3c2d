"""Devices (BLE gateways and cameras, one table so `/devices` lists both) and camera groups.

Columns that belong to one kind are null for the other. `status` and `last_seen_at` are written by the ingest
(a gateway or camera that speaks registers itself with no floor); the catalogue only reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base

GATEWAY_MAC_INDEX = "uq_devices_gateway_mac"
CAMERA_CODE_INDEX = "uq_devices_camera_code"


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("kind IN ('gateway', 'camera')", name="kind_known"),
        CheckConstraint("status IN ('unknown', 'online', 'offline')", name="status_known"),
        CheckConstraint("kind <> 'gateway' OR mac IS NOT NULL", name="gateway_has_mac"),
        CheckConstraint("kind <> 'camera' OR code IS NOT NULL", name="camera_has_code"),
        Index(GATEWAY_MAC_INDEX, "mac", unique=True, postgresql_where=text("kind = 'gateway'")),
        Index(CAMERA_CODE_INDEX, "building_id", "code", unique=True, postgresql_where=text("kind = 'camera'")),
        Index("ix_devices_kind_status", "kind", "status"),
        Index("ix_devices_floor_id", "floor_id"),
        Index("ix_devices_building_id", "building_id"),
        Index("ix_devices_zone_id", "zone_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), comment="gateway | camera")
    name: Mapped[str | None] = mapped_column(String(200))
    building_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("buildings.id", ondelete="RESTRICT"))
    floor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("floors.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), server_default="unknown", comment="unknown | online | offline")
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Gateways
    mac: Mapped[str | None] = mapped_column(String(17), comment="gateways: AA:BB:CC:DD:EE:FF")
    zone_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("zones.id", ondelete="SET NULL"))
    x_px: Mapped[float | None] = mapped_column(Double, comment="gateways: position on the floor plan")
    y_px: Mapped[float | None] = mapped_column(Double)
    rssi_offset: Mapped[int] = mapped_column(
        Integer, server_default="0", comment="gateways: dB added to each reading (mixed hardware)"
    )
    rssi_threshold: Mapped[int | None] = mapped_column(
        Integer, comment="gateways: readings weaker than this (after the offset) are ignored"
    )
    # Cameras
    code: Mapped[str | None] = mapped_column(String(100), comment="cameras: code in the CAM-BUS topics")
    info: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="cameras: last info message, or as set")
    topic: Mapped[str | None] = mapped_column(
        String(400), comment="cameras: CAM-BUS topic prefix of its last message, where its commands go"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class CameraGroup(Base):
    __tablename__ = "camera_groups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class CameraGroupMember(Base):
    __tablename__ = "camera_group_members"

    group_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("camera_groups.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
