"""The two bus tables every service schema has: `outbox` (events to publish) and `inbox` (events consumed)."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from mirante.db import schema_metadata

OUTBOX = "outbox"
INBOX = "inbox"


def _outbox(metadata: MetaData) -> Table:
    return Table(
        OUTBOX,
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True, comment="the event id"),
        Column("type", String(200), nullable=False),
        Column("subject", String(500)),
        Column("tenant", String(100)),
        Column("envelope", JSONB, nullable=False, comment="the whole CloudEvents-style envelope"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index(
            "ix_outbox_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


def _inbox(metadata: MetaData) -> Table:
    return Table(
        INBOX,
        metadata,
        Column("consumer", String(200), primary_key=True, comment="consumer group that handled the event"),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


@cache
def bus_tables(schema: str) -> tuple[Table, Table]:
    """`(outbox, inbox)` of `schema`, for queries (cached: one MetaData per schema)."""
    metadata = schema_metadata(schema)
    return _outbox(metadata), _inbox(metadata)


def outbox_table(schema: str) -> Table:
    return bus_tables(schema)[0]


def inbox_table(schema: str) -> Table:
    return bus_tables(schema)[1]
