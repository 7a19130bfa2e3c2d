"""Create schema telemetry_ingest with its event outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from mirante.bus.migration import create_bus_tables, drop_bus_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "telemetry_ingest"


def upgrade() -> None:
    create_bus_tables(SCHEMA)


def downgrade() -> None:
    drop_bus_tables(SCHEMA)
