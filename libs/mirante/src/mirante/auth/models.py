"""Tables of the `identity` schema: users and API keys (created by the `identity` Alembic history)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mirante.db import schema_metadata

SCHEMA = "identity"
USERNAME_MAX_LENGTH = 150
EMAIL_MAX_LENGTH = 254
TENANT_MAX_LENGTH = 63
API_KEY_NAME_MAX_LENGTH = 100
ROLE_CHECK = "role IN ('admin', 'operator', 'viewer')"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class User(Base):
    """A person who logs in. `username` is stored lower-cased, which makes uniqueness case-insensitive."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username"),
        CheckConstraint(ROLE_CHECK, name="role"),
        CheckConstraint("username = lower(username)", name="username_lower"),
    )
    # Fetch `updated_at` (set by the database) with RETURNING, so no lazy load happens under asyncio.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX_LENGTH))
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), server_default=text("'viewer'"))
    is_staff: Mapped[bool] = mapped_column(Boolean, server_default=false())
    tenant: Mapped[str | None] = mapped_column(String(TENANT_MAX_LENGTH))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Tokens carry the version current when they were issued; raising it revokes all earlier tokens at once.
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, username={self.username!r}, role={self.role!r})"


class ApiKey(Base):
    """A credential for machines. It carries a role (like a user) and scopes; only its hash is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("prefix"),
        CheckConstraint(ROLE_CHECK, name="role"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(API_KEY_NAME_MAX_LENGTH))
    role: Mapped[str] = mapped_column(String(16), server_default=text("'viewer'"))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    tenant: Mapped[str | None] = mapped_column(String(TENANT_MAX_LENGTH))
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(f"{SCHEMA}.users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, prefix={self.prefix!r}, name={self.name!r})"
