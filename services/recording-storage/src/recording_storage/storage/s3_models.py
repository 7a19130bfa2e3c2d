"""Tables of the S3 backend: its multipart uploads in progress (with their parts) and its finished objects.

They are the backend's own bookkeeping, written in short transactions of their own (as a disk backend's files are
written whatever becomes of the request's transaction), so any replica can continue an upload or read an object.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from recording_storage.config import S3_MAX_PARTS
from recording_storage.db import Base


class S3Upload(Base):
    """A storage key being written: its multipart upload (once a first part is sent) and the tail below a part."""

    __tablename__ = "s3_uploads"

    key: Mapped[str] = mapped_column(Text, primary_key=True, comment="the storage key (a partial upload's)")
    object_key: Mapped[str] = mapped_column(Text, comment="the S3 key the multipart upload completes into")
    upload_id: Mapped[str | None] = mapped_column(Text, comment="S3 multipart upload id; null until a first part")
    tail_key: Mapped[str | None] = mapped_column(Text, comment="S3 staging object of the bytes after the parts")
    tail_size: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    tail_sha256: Mapped[str | None] = mapped_column(Text, comment="SHA-256 of the tail object, hex")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("tail_size >= 0", name="tail_size_not_negative"),)


class S3UploadPart(Base):
    """One part of a multipart upload, as S3 acknowledged it."""

    __tablename__ = "s3_upload_parts"

    key: Mapped[str] = mapped_column(Text, ForeignKey("s3_uploads.key", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(Text, comment="the ETag S3 answered for the part")
    sha256: Mapped[str] = mapped_column(Text, comment="SHA-256 of the part, hex (sent as its S3 checksum)")

    __table_args__ = (
        CheckConstraint(f"number BETWEEN 1 AND {S3_MAX_PARTS}", name="number_in_range"),
        CheckConstraint("size > 0", name="size_positive"),
    )


class S3Object(Base):
    """A readable storage key and the S3 object holding its bytes; several keys may share one object (a partial
    upload's key and the recording's key it was committed to), which goes when the last of them is deleted."""

    __tablename__ = "s3_objects"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    object_key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("size >= 0", name="size_not_negative"),
        Index("ix_s3_objects_object_key", "object_key"),
    )
