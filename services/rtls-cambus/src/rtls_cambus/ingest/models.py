"""Tables the ingest writes: gateway readings (collection logs, partitioned by day), rejected messages, camera
analytic events and CAM-BUS collectors."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base

READINGS_TABLE: Final = "gateway_readings"
READINGS_DEFAULT_PARTITION: Final = "gateway_readings_default"

# Range-partitioned by `received_at`, one partition per UTC day (`gateway_readings_pYYYYMMDD`) plus a default
# one: rows are only ever appended and read by time, and retention drops whole days. No foreign key to devices,
# so the log of a gateway outlives its catalogue row (it keeps the MAC).
gateway_readings = Table(
    READINGS_TABLE,
    Base.metadata,
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("gateway_id", BigInteger, nullable=False),
    Column("gateway_mac", String(17), nullable=False),
    Column("tag_mac", String(17), nullable=False),
    Column("rssi", SmallInteger, nullable=False, comment="dBm as the gateway reported it, before its offset"),
    PrimaryKeyConstraint("id", "received_at"),
    Index("ix_gateway_readings_tag_mac_received_at", "tag_mac", "received_at"),
    Index("ix_gateway_readings_gateway_id_received_at", "gateway_id", "received_at"),
    postgresql_partition_by="RANGE (received_at)",
)


class RejectedMessage(Base):
    """A message, or one reading of it, the ingest could not use, with why; kept `rejected_retention_days`."""

    __tablename__ = "rejected_messages"
    __table_args__ = (Index("ix_rejected_messages_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    topic: Mapped[str] = mapped_column(Text)
    reason_class: Mapped[str] = mapped_column(String(40), index=True, comment="e.g. malformed_json, rssi_range")
    reason: Mapped[str] = mapped_column(Text)
    reading_index: Mapped[int | None] = mapped_column(Integer, comment="which reading of the message, if one")
    payload: Mapped[bytes] = mapped_column(LargeBinary, comment="the message (or reading) as received, cut short")


class CameraEvent(Base):
    """An analytic event of a camera: one row per event id, updated by its new/update/end messages."""

    __tablename__ = "camera_events"
    __table_args__ = (
        UniqueConstraint("camera_id", "analytic", "event_id"),
        Index("ix_camera_events_camera_id_started_at", "camera_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    camera_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("devices.id", ondelete="CASCADE"))
    analytic: Mapped[str] = mapped_column(String(100), comment="the topic's <analytic>, e.g. intrusion")
    event_id: Mapped[str] = mapped_column(String(200), comment="the camera's id, stable over new/update/end")
    type: Mapped[str] = mapped_column(String(8), comment="last message: new | update | end")
    label: Mapped[str | None] = mapped_column(String(100))
    sub_label: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Double)
    top_score: Mapped[float | None] = mapped_column(Double)
    zones: Mapped[list[str]] = mapped_column(JSONB, server_default="[]", comment="zones the object is in now")
    entered_zones: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    messages: Mapped[int] = mapped_column(Integer, server_default="1")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the last message's event object")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CamBusCollector(Base):
    """The collector of a building on CAM-BUS (`rtls/cameras/<tenant>/<building>/collector/status`)."""

    __tablename__ = "cambus_collectors"
    __table_args__ = (UniqueConstraint("tenant", "building_code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    building_code: Mapped[str] = mapped_column(String(64))
    building_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("buildings.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
