"""Webhook deliveries: due ones indexed per subscription (the dispatcher claims each subscription's oldest), no
separate index on the subscription (the unique (subscription_id, event_id) serves it), and room in each page so a
claim's lease is a heap-only update.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "rtls_cambus"


def upgrade() -> None:
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries", schema=SCHEMA)
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["subscription_id", "next_attempt_at", "id"],
        schema=SCHEMA,
        postgresql_where="status = 'pending'",
    )
    op.drop_index(op.f("ix_webhook_deliveries_subscription_id"), table_name="webhook_deliveries", schema=SCHEMA)
    op.execute(f"ALTER TABLE {SCHEMA}.webhook_deliveries SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.webhook_deliveries RESET (fillfactor)")
    op.create_index(
        op.f("ix_webhook_deliveries_subscription_id"), "webhook_deliveries", ["subscription_id"], schema=SCHEMA
    )
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries", schema=SCHEMA)
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where="status = 'pending'",
    )
