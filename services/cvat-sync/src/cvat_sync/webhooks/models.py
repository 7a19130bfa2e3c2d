"""The audit log of CVAT webhook requests: written before processing, updated with the outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cvat_sync.db import Base

STATUSES = ("pending", "processing", "success", "error", "rejected", "duplicate", "ignored")


class WebhookLog(Base):
    __tablename__ = "webhook_logs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_type: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), server_default="pending")
    body: Mapped[str] = mapped_column(
        Text, comment="the raw body (UTF-8, undecodable bytes replaced); only its start when body_truncated"
    )
    body_sha256: Mapped[str] = mapped_column(String(64), comment="of the whole body as received")
    body_size: Mapped[int | None] = mapped_column(Integer, comment="bytes received; null on rows from before 0003")
    body_truncated: Mapped[bool] = mapped_column(
        server_default=text("false"), comment="only the start of an unauthenticated body is kept"
    )
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    signature_valid: Mapped[bool]
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    webhook_id: Mapped[int | None] = mapped_column(BigInteger, comment="CVAT's webhook id from the payload")
    error_message: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_logs_body_sha256", "body_sha256"),
        Index("ix_webhook_logs_status", "status"),
        Index("ix_webhook_logs_event_type", "event_type"),
        Index("ix_webhook_logs_received_at", "received_at"),
    )
