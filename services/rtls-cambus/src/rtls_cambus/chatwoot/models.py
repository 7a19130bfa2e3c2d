"""Which Chatwoot conversation belongs to which incident, which Chatwoot message to which incident message, and
the log of every webhook request Chatwoot (or anyone) sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base

OUTBOUND = "outbound"
INBOUND = "inbound"

# Webhook log statuses. Accepted deliveries are `queued` until the sync handles them, then `processed` (mirrored)
# or `ignored` (nothing to mirror); `duplicate` repeats an accepted delivery id; `rejected` was refused at the door.
QUEUED = "queued"
PROCESSED = "processed"
IGNORED = "ignored"
DUPLICATE = "duplicate"
REJECTED = "rejected"
ACCEPTED_STATUSES = (QUEUED, PROCESSED, IGNORED)
ACCEPTED_PREDICATE = "status IN ('queued', 'processed', 'ignored')"


class ChatwootConversation(Base):
    __tablename__ = "chatwoot_conversations"
    __table_args__ = (UniqueConstraint("account_id", "conversation_id"),)

    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(BigInteger)
    inbox_id: Mapped[int] = mapped_column(BigInteger)
    conversation_id: Mapped[int] = mapped_column(BigInteger, comment="Chatwoot's display id, as its API and webhooks")
    contact_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChatwootMessage(Base):
    """One message that crossed between the incident's thread and its conversation, in either direction."""

    __tablename__ = "chatwoot_messages"
    __table_args__ = (UniqueConstraint("account_id", "chatwoot_message_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    incident_message_id: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey("incident_messages.id", ondelete="CASCADE"),
        unique=True,
        comment="null for the conversation's opening message",
    )
    account_id: Mapped[int] = mapped_column(BigInteger)
    chatwoot_message_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(10), comment="outbound (sent to Chatwoot) or inbound (from it)")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChatwootDelivery(Base):
    """One request to the Chatwoot webhook endpoint, whatever became of it."""

    __tablename__ = "chatwoot_deliveries"
    __table_args__ = (
        Index(
            "uq_chatwoot_deliveries_accepted_delivery_id",
            "delivery_id",
            unique=True,
            postgresql_where=ACCEPTED_PREDICATE,
        ),
        Index("ix_chatwoot_deliveries_received_at", "received_at"),
        Index("ix_chatwoot_deliveries_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str | None] = mapped_column(String(200), comment="X-Chatwoot-Delivery, the same on retries")
    event: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int] = mapped_column(Integer)
    authenticated_by: Mapped[str | None] = mapped_column(String(20), comment="signature or token; null: not at all")
    body: Mapped[str] = mapped_column(
        Text, comment="the raw body (UTF-8, undecodable bytes replaced); only its start when body_truncated"
    )
    body_size: Mapped[int] = mapped_column(Integer)
    body_truncated: Mapped[bool] = mapped_column(Boolean)
    body_sha256: Mapped[str] = mapped_column(String(64))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text, comment="why it was refused or ignored")
    incident_id: Mapped[int | None] = mapped_column(BigInteger, comment="the incident it reached, if any")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
