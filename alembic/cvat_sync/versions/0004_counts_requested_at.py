"""Jobs remember that a webhook asked for their annotations to be counted again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'jobs',
        sa.Column(
            'counts_requested_at',
            sa.DateTime(timezone=True),
            nullable=True,
            comment='when a change announced without counts (a webhook) asked for a recount; null once counted',
        ),
        schema='cvat_sync',
    )


def downgrade() -> None:
    op.drop_column('jobs', 'counts_requested_at', schema='cvat_sync')
