"""Jobs, job history, sync runs and the webhook audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False, comment='CVAT job id'),
    sa.Column('task_id', sa.BigInteger(), nullable=True),
    sa.Column('task_name', sa.String(length=500), nullable=True),
    sa.Column('project_id', sa.BigInteger(), nullable=True),
    sa.Column('project_name', sa.String(length=500), nullable=True),
    sa.Column('assignee', sa.String(length=150), nullable=True, comment='CVAT username'),
    sa.Column('assignee_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False, comment='annotation | validation | completed'),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('job_type', sa.String(length=30), nullable=True),
    sa.Column('frame_count', sa.Integer(), nullable=True),
    sa.Column('manual_annotations', sa.Integer(), server_default='0', nullable=False),
    sa.Column('interpolated_annotations', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_annotations', sa.Integer(), server_default='0', nullable=False),
    sa.Column('annotations_counted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cvat_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cvat_updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raw', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment='the job as CVAT last sent it'),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_synced_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('search', postgresql.TSVECTOR(), sa.Computed("to_tsvector('simple', coalesce(task_name, '') || ' ' || coalesce(project_name, '') || ' ' || coalesce(assignee, ''))", persisted=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    schema='cvat_sync'
    )
    op.create_index('ix_jobs_assignee', 'jobs', ['assignee'], unique=False, schema='cvat_sync')
    op.create_index('ix_jobs_cvat_updated_at', 'jobs', ['cvat_updated_at'], unique=False, schema='cvat_sync')
    op.create_index('ix_jobs_project_id', 'jobs', ['project_id'], unique=False, schema='cvat_sync')
    op.create_index('ix_jobs_search', 'jobs', ['search'], unique=False, schema='cvat_sync', postgresql_using='gin')
    op.create_index('ix_jobs_status', 'jobs', ['status'], unique=False, schema='cvat_sync')
    op.create_index('ix_jobs_task_id', 'jobs', ['task_id'], unique=False, schema='cvat_sync')
    op.create_table('sync_runs',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False, comment='queued | running | success | error'),
    sa.Column('trigger', sa.String(length=20), nullable=False, comment='cli | api | web'),
    sa.Column('started_by', sa.String(length=150), nullable=True),
    sa.Column('filters', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('force', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('expected', sa.Integer(), nullable=True, comment='jobs CVAT reported for the filters'),
    sa.Column('fetched', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated', sa.Integer(), server_default='0', nullable=False),
    sa.Column('unchanged', sa.Integer(), server_default='0', nullable=False),
    sa.Column('deleted', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs')),
    schema='cvat_sync'
    )
    op.create_index('ix_sync_runs_created_at', 'sync_runs', ['created_at'], unique=False, schema='cvat_sync')
    op.create_index('uq_sync_runs_one_active', 'sync_runs', [sa.literal_column('(true)')], unique=True, schema='cvat_sync', postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.create_table('webhook_logs',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('body', sa.Text(), nullable=False, comment='the raw body (UTF-8, undecodable bytes replaced)'),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('headers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('source_ip', sa.String(length=64), nullable=True),
    sa.Column('signature_valid', sa.Boolean(), nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=True),
    sa.Column('webhook_id', sa.BigInteger(), nullable=True, comment="CVAT's webhook id from the payload"),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_logs')),
    schema='cvat_sync'
    )
    op.create_index('ix_webhook_logs_body_sha256', 'webhook_logs', ['body_sha256'], unique=False, schema='cvat_sync')
    op.create_index('ix_webhook_logs_event_type', 'webhook_logs', ['event_type'], unique=False, schema='cvat_sync')
    op.create_index('ix_webhook_logs_received_at', 'webhook_logs', ['received_at'], unique=False, schema='cvat_sync')
    op.create_index('ix_webhook_logs_status', 'webhook_logs', ['status'], unique=False, schema='cvat_sync')
    op.create_table('job_history',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False, comment='sync | webhook'),
    sa.Column('kind', sa.String(length=20), nullable=False, comment='created | updated | deleted | restored'),
    sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment='{"field": [old, new]}'),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('assignee', sa.String(length=150), nullable=True),
    sa.Column('cvat_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['cvat_sync.jobs.id'], name=op.f('fk_job_history_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_history')),
    schema='cvat_sync'
    )
    op.create_index('ix_job_history_job_id_changed_at', 'job_history', ['job_id', 'changed_at'], unique=False, schema='cvat_sync')


def downgrade() -> None:
    op.drop_index('ix_job_history_job_id_changed_at', table_name='job_history', schema='cvat_sync')
    op.drop_table('job_history', schema='cvat_sync')
    op.drop_index('ix_webhook_logs_status', table_name='webhook_logs', schema='cvat_sync')
    op.drop_index('ix_webhook_logs_received_at', table_name='webhook_logs', schema='cvat_sync')
    op.drop_index('ix_webhook_logs_event_type', table_name='webhook_logs', schema='cvat_sync')
    op.drop_index('ix_webhook_logs_body_sha256', table_name='webhook_logs', schema='cvat_sync')
    op.drop_table('webhook_logs', schema='cvat_sync')
    op.drop_index('uq_sync_runs_one_active', table_name='sync_runs', schema='cvat_sync', postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.drop_index('ix_sync_runs_created_at', table_name='sync_runs', schema='cvat_sync')
    op.drop_table('sync_runs', schema='cvat_sync')
    op.drop_index('ix_jobs_task_id', table_name='jobs', schema='cvat_sync')
    op.drop_index('ix_jobs_status', table_name='jobs', schema='cvat_sync')
    op.drop_index('ix_jobs_search', table_name='jobs', schema='cvat_sync', postgresql_using='gin')
    op.drop_index('ix_jobs_project_id', table_name='jobs', schema='cvat_sync')
    op.drop_index('ix_jobs_cvat_updated_at', table_name='jobs', schema='cvat_sync')
    op.drop_index('ix_jobs_assignee', table_name='jobs', schema='cvat_sync')
    op.drop_table('jobs', schema='cvat_sync')
