"""Tables of the `recording_storage` schema: upload sessions, the files they receive, finished recordings, and
the tally of failed uploads.

Upload sessions and recordings are separate tables so that a recording exists (is listed, can be read) only once
its upload was verified: finishing inserts the recording row in the same transaction that closes the session.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from recording_storage.db import Base

SESSION_STATUSES: Final = ("open", "completed", "expired")
SHA256_CHECK: Final = "~ '^[0-9a-f]{64}$'"
EXPIRED: Final = "expired"
"""The reason of a failed upload whose session expired unfinished; a refused finish counts under its error code."""


class UploadSession(Base):
    """One recording being uploaded: what the client declared, who may continue it, and until when."""

    __tablename__ = "upload_sessions"

    id: Mapped[str] = mapped_column(Text, primary_key=True, comment="ups_<32 hex>, made by the server")
    client_session_id: Mapped[str] = mapped_column(Text, comment="the recorder's own session id")
    owner_kind: Mapped[str] = mapped_column(Text, comment="user | api_key")
    owner_id: Mapped[int] = mapped_column(BigInteger)
    tenant: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="open")
    video_size: Mapped[int] = mapped_column(BigInteger, comment="declared size of the video in bytes")
    video_sha256: Mapped[str | None] = mapped_column(Text, comment="declared SHA-256 of the video, hex")
    metadata_size: Mapped[int | None] = mapped_column(BigInteger, comment="declared size of the metadata file")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="connection_info and metadata as sent")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recording_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    __table_args__ = (
        CheckConstraint(f"status IN {SESSION_STATUSES!r}", name="status_known"),
        CheckConstraint("owner_kind IN ('user', 'api_key')", name="owner_kind_known"),
        CheckConstraint("video_size >= 0", name="video_size_not_negative"),
        CheckConstraint("metadata_size IS NULL OR metadata_size >= 0", name="metadata_size_not_negative"),
        CheckConstraint(f"video_sha256 IS NULL OR video_sha256 {SHA256_CHECK}", name="video_sha256_hex"),
        Index("ix_upload_sessions_status_expires_at", "status", "expires_at"),
        Index("ix_upload_sessions_owner", "owner_kind", "owner_id"),
        # One open session per recording: concurrent create-session calls for it cannot both insert one.
        Index(
            "uq_upload_sessions_open_client_session",
            "owner_kind",
            "owner_id",
            "client_session_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )


class UploadFile(Base):
    """One file of a session (its video or its metadata) and how much of it has arrived.

    A request appending to it holds a lease (`writer_token` until `lease_until`, on the database's clock), taken
    and renewed in short transactions, so a second request to the same file, or a finish, is refused instead of
    interleaving, without a transaction staying open while the body streams. `received` counts durable bytes.
    """

    __tablename__ = "upload_files"

    session_id: Mapped[str] = mapped_column(
        Text, ForeignKey("upload_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(Text, primary_key=True, comment="video | metadata")
    received: Mapped[int] = mapped_column(BigInteger, server_default=text("0"), comment="bytes stored so far")
    complete: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    sha256: Mapped[str | None] = mapped_column(Text, comment="SHA-256 of the received bytes, once complete")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    writer_token: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), comment="the request writing the file, while leased"
    )
    lease_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="the writer's lease ends then (database clock) unless renewed"
    )

    __table_args__ = (
        CheckConstraint("kind IN ('video', 'metadata')", name="kind_known"),
        CheckConstraint("(writer_token IS NULL) = (lease_until IS NULL)", name="lease_whole"),
        CheckConstraint("received >= 0", name="received_not_negative"),
        CheckConstraint(f"sha256 IS NULL OR sha256 {SHA256_CHECK}", name="sha256_hex"),
    )


class Recording(Base):
    """A verified recording: searchable fields of its connection, and where its files are kept."""

    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    session_id: Mapped[str] = mapped_column(Text, unique=True, comment="the upload session it came from")
    client_session_id: Mapped[str] = mapped_column(Text)
    owner_kind: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int] = mapped_column(BigInteger)
    tenant: Mapped[str | None] = mapped_column(Text)
    wats_user: Mapped[str | None] = mapped_column(Text)
    wats_user_machine: Mapped[str | None] = mapped_column(Text)
    wats_user_ip: Mapped[str | None] = mapped_column(Text)
    server_name: Mapped[str | None] = mapped_column(Text)
    server_ip: Mapped[str | None] = mapped_column(Text)
    server_user: Mapped[str | None] = mapped_column(Text)
    connection_type: Mapped[str | None] = mapped_column(Text)
    con_codigo: Mapped[int | None] = mapped_column(Integer)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="connection_info and metadata as sent")
    video_key: Mapped[str] = mapped_column(Text)
    video_size: Mapped[int] = mapped_column(BigInteger)
    video_sha256: Mapped[str] = mapped_column(Text)
    metadata_key: Mapped[str | None] = mapped_column(Text)
    metadata_size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"video_sha256 {SHA256_CHECK}", name="video_sha256_hex"),
        Index("ix_recordings_created_at", "created_at"),
        Index("ix_recordings_start_time", "start_time"),
        Index("ix_recordings_wats_user", "wats_user"),
        Index("ix_recordings_wats_user_machine", "wats_user_machine"),
        Index("ix_recordings_server_name", "server_name"),
        Index("ix_recordings_server_ip", "server_ip"),
        Index("ix_recordings_tenant_created_at", "tenant", "created_at"),
        Index("ix_recordings_owner_client_session", "owner_kind", "owner_id", "client_session_id"),
    )


class UploadFailure(Base):
    """Failed uploads counted per UTC day, tenant and reason, each count raised in the transaction of its failure.

    Kept when the sessions go (a few rows a day), so the statistics count failures over any span of days.
    """

    __tablename__ = "upload_failures"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    day: Mapped[date] = mapped_column(Date, comment="UTC day of the failure (a session's: the day it expired)")
    tenant: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, comment="expired, or the code a refused finish answered")
    count: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("count >= 0", name="count_not_negative"),
        # Sessions without a tenant are counted in one row per day and reason too.
        UniqueConstraint("day", "tenant", "reason", postgresql_nulls_not_distinct=True),
    )
