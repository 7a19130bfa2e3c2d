"""Indexes for the retention of finished webhook deliveries: when a delivered one was delivered, when a failed one's
last attempt was due.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "rtls_cambus"


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_delivered_at",
        "webhook_deliveries",
        ["delivered_at"],
        schema=SCHEMA,
        postgresql_where="status = 'delivered'",
    )
    op.create_index(
        "ix_webhook_deliveries_failed_at",
        "webhook_deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where="status = 'failed'",
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_failed_at", table_name="webhook_deliveries", schema=SCHEMA)
    op.drop_index("ix_webhook_deliveries_delivered_at", table_name="webhook_deliveries", schema=SCHEMA)
