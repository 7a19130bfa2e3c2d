"""Who wants which mail, and every mail notification: one per (event, recipient), sent alone or in a digest."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base

ALERT = "alert"
INCIDENT = "incident"

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


class NotificationPreference(Base):
    """A user's choices; a user without a row gets every mail."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, comment="identity user id")
    email_alerts: Mapped[bool] = mapped_column(Boolean, server_default="true")
    email_incidents: Mapped[bool] = mapped_column(Boolean, server_default="true")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class MailNotification(Base):
    __tablename__ = "mail_notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        Index("ix_mail_notifications_due", "due_at", postgresql_where="status = 'pending'"),
        Index("ix_mail_notifications_recipient", "user_id", "kind", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), comment="the event it tells of")
    kind: Mapped[str] = mapped_column(String(20), comment="alert or incident")
    user_id: Mapped[int] = mapped_column(BigInteger, comment="identity user id")
    address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="what the templates show")
    status: Mapped[str] = mapped_column(String(16), server_default=PENDING)
    due_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), comment="held back for a digest, or the next try"
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="a sender is sending it until then"
    )
    last_error: Mapped[str | None] = mapped_column(String(1000))
    mail_id: Mapped[str | None] = mapped_column(String(300), comment="Message-ID of the mail that carried it")
    in_digest: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
