"""Alerts the engine resolves when their situation ends: a flag copied from the rule, and an index of those still
unresolved.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "rtls_cambus"


def upgrade() -> None:
    # Alerts raised before stay as their operators knew them: resolved by hand.
    op.add_column(
        "alert_events",
        sa.Column(
            "auto_resolve",
            sa.Boolean(),
            server_default="false",
            nullable=False,
            comment="the engine resolves it when its situation ends (from its rule)",
        ),
        schema=SCHEMA,
    )
    op.alter_column(
        "alert_events",
        "resolved_by_kind",
        existing_type=sa.String(length=20),
        existing_nullable=True,
        comment="user, api_key or system",
        schema=SCHEMA,
    )
    op.create_index(
        "ix_alert_events_to_resolve",
        "alert_events",
        ["kind"],
        schema=SCHEMA,
        postgresql_where=sa.text("auto_resolve AND status <> 'resolved'"),
    )


def downgrade() -> None:
    op.drop_index("ix_alert_events_to_resolve", table_name="alert_events", schema=SCHEMA)
    op.alter_column(
        "alert_events",
        "resolved_by_kind",
        existing_type=sa.String(length=20),
        existing_nullable=True,
        comment=None,
        schema=SCHEMA,
    )
    op.drop_column("alert_events", "auto_resolve", schema=SCHEMA)
