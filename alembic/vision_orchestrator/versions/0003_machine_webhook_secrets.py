"""Machine credentials carry the machine's Standard Webhooks secret, issued and rotated with the bearer secret.

The orchestrator needs the key itself (not a hash) to check the machines' signatures and to sign its own calls
to them, so it is stored as issued, `whsec_<base64>`, readable only by the service's database role. Credentials
issued before this revision have none: their machines authenticate with the bearer credential alone until the
next rotation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "vision_orchestrator"


def upgrade() -> None:
    op.add_column(
        "machine_credentials",
        sa.Column(
            "webhook_secret",
            sa.String(length=100),
            nullable=True,
            comment="Standard Webhooks key (whsec_...), kept to verify and sign; null for credentials issued before",
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("machine_credentials", "webhook_secret", schema=SCHEMA)
