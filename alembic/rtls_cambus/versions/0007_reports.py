"""Indexes of the reports: presence sessions by the period they cover, incidents by when they were opened.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_presence_sessions_period",
        "presence_sessions",
        [sa.text("tstzrange(started_at, ended_at)")],
        unique=False,
        schema="rtls_cambus",
        postgresql_using="gist",
    )
    op.create_index("ix_incidents_created_at", "incidents", ["created_at"], unique=False, schema="rtls_cambus")


def downgrade() -> None:
    op.drop_index("ix_incidents_created_at", table_name="incidents", schema="rtls_cambus")
    op.drop_index("ix_presence_sessions_period", table_name="presence_sessions", schema="rtls_cambus")
