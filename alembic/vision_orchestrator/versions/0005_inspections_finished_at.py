"""Finished inspections by when they finished: the dashboard's recent-work window reads only those.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "vision_orchestrator"


def upgrade() -> None:
    op.create_index(
        'ix_inspections_finished_at',
        'inspections',
        ['finished_at'],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('completed', 'failed')"),
    )


def downgrade() -> None:
    op.drop_index('ix_inspections_finished_at', table_name='inspections', schema=SCHEMA)
