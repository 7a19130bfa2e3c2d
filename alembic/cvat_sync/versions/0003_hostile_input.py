"""Webhook log body size and truncation; per-job errors of sync runs; impossible job dates cleared.

Job dates from before 1970 were stored as they came; PostgreSQL turned year 1 into -infinity, which the
service then read back as a date without offset that compares with nothing, so every later webhook for the
job failed. Such dates (and +infinity) are set to the epoch, the oldest date accepted now, so the next
genuine update of the job wins; optional dates are cleared.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMPOSSIBLE = "({column} < timestamptz '1970-01-01 00:00:00+00' OR NOT isfinite({column}))"
CLEAR_IMPOSSIBLE_DATES = (
    "UPDATE cvat_sync.jobs SET cvat_updated_at = timestamptz '1970-01-01 00:00:00+00' "
    f"WHERE {IMPOSSIBLE.format(column='cvat_updated_at')}",
    f"UPDATE cvat_sync.jobs SET cvat_created_at = NULL WHERE {IMPOSSIBLE.format(column='cvat_created_at')}",
    "UPDATE cvat_sync.job_history SET cvat_updated_at = NULL "
    f"WHERE {IMPOSSIBLE.format(column='cvat_updated_at')}",
)


def upgrade() -> None:
    op.add_column('webhook_logs', sa.Column('body_size', sa.Integer(), nullable=True, comment='bytes received; null on rows from before 0003'), schema='cvat_sync')
    op.add_column('webhook_logs', sa.Column('body_truncated', sa.Boolean(), server_default=sa.text('false'), nullable=False, comment='only the start of an unauthenticated body is kept'), schema='cvat_sync')
    op.alter_column('webhook_logs', 'body', existing_type=sa.Text(), comment='the raw body (UTF-8, undecodable bytes replaced); only its start when body_truncated', existing_comment='the raw body (UTF-8, undecodable bytes replaced)', existing_nullable=False, schema='cvat_sync')
    op.alter_column('webhook_logs', 'body_sha256', existing_type=sa.String(length=64), comment='of the whole body as received', existing_nullable=False, schema='cvat_sync')
    op.add_column('sync_runs', sa.Column('job_errors', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False, comment='[{"job_id", "message"}] of the first jobs that could not be synced'), schema='cvat_sync')
    for statement in CLEAR_IMPOSSIBLE_DATES:
        op.execute(statement)


def downgrade() -> None:
    op.drop_column('sync_runs', 'job_errors', schema='cvat_sync')
    op.alter_column('webhook_logs', 'body_sha256', existing_type=sa.String(length=64), comment=None, existing_comment='of the whole body as received', existing_nullable=False, schema='cvat_sync')
    op.alter_column('webhook_logs', 'body', existing_type=sa.Text(), comment='the raw body (UTF-8, undecodable bytes replaced)', existing_comment='the raw body (UTF-8, undecodable bytes replaced); only its start when body_truncated', existing_nullable=False, schema='cvat_sync')
    op.drop_column('webhook_logs', 'body_truncated', schema='cvat_sync')
    op.drop_column('webhook_logs', 'body_size', schema='cvat_sync')
