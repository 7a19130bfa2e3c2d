"""Machines and their credentials, the inspection-type catalogue (seeded), inspections with their status history
and results, and heartbeats partitioned by day.

`heartbeats` is partitioned by range of `received_at`, one partition per UTC day (`heartbeats_pYYYYMMDD`); the
default partition created here takes the rows of any day without a partition of its own, so a write never fails
for want of one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "vision_orchestrator"
SEEDED_TYPES = {
    "blob_detection": "Finds connected regions (blobs) and reports their count, position and size.",
    "edge_detection": "Finds edges and contours in the image.",
    "color_filter": "Keeps the pixels within a colour range, e.g. to find a missing or wrong-coloured part.",
}


def upgrade() -> None:
    op.create_table('heartbeats',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('machine_id', sa.String(length=15), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True, comment="the machine's own clock"),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('current_inspections', sa.Integer(), nullable=True),
    sa.Column('system_info', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('performance_metrics', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.PrimaryKeyConstraint('id', 'received_at', name=op.f('pk_heartbeats')),
    schema='vision_orchestrator',
    postgresql_partition_by='RANGE (received_at)'
    )
    op.create_index('ix_heartbeats_machine_id_received_at', 'heartbeats', ['machine_id', 'received_at'], unique=False, schema='vision_orchestrator')
    op.execute(f'CREATE TABLE "{SCHEMA}".heartbeats_default PARTITION OF "{SCHEMA}".heartbeats DEFAULT')
    op.create_table('inspection_types',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_inspection_types')),
    schema='vision_orchestrator'
    )
    types = sa.table('inspection_types', sa.column('name'), sa.column('description'), schema=SCHEMA)
    op.bulk_insert(types, [{'name': name, 'description': text} for name, text in SEEDED_TYPES.items()])
    op.create_table('machines',
    sa.Column('id', sa.String(length=15), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=True, comment="site or area, e.g. 'Linha de Produção A'"),
    sa.Column('line', sa.String(length=200), nullable=True, comment='production line or cell, for `nearest`'),
    sa.Column('ip_address', postgresql.INET(), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='offline', nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('maintenance', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('last_heartbeat', sa.DateTime(timezone=True), nullable=True),
    sa.Column('max_concurrent_inspections', sa.Integer(), nullable=False),
    sa.Column('current_inspections', sa.Integer(), server_default='0', nullable=False, comment='inspections assigned to it or processing, kept by every transition'),
    sa.Column('supported_inspection_types', postgresql.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('hardware_specs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('online', 'busy', 'offline')", name=op.f('ck_machines_status')),
    sa.CheckConstraint('current_inspections >= 0', name=op.f('ck_machines_current_not_negative')),
    sa.CheckConstraint('max_concurrent_inspections > 0', name=op.f('ck_machines_positive_capacity')),
    sa.CheckConstraint('port BETWEEN 1 AND 65535', name=op.f('ck_machines_port_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_machines')),
    sa.UniqueConstraint('name', name=op.f('uq_machines_name')),
    schema='vision_orchestrator'
    )
    op.create_index('ix_machines_status', 'machines', ['status'], unique=False, schema='vision_orchestrator')
    op.create_index('ix_machines_supported_inspection_types', 'machines', ['supported_inspection_types'], unique=False, schema='vision_orchestrator', postgresql_using='gin')
    op.create_table('inspections',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('inspection_type', sa.String(length=64), nullable=False),
    sa.Column('pipeline_config', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('priority', sa.Integer(), server_default='5', nullable=False, comment='1 goes first'),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('target_machine_id', sa.String(length=15), nullable=True),
    sa.Column('assigned_machine_id', sa.String(length=15), nullable=True),
    sa.Column('lease', sa.Integer(), server_default='0', nullable=False, comment='raised on every assignment; a result carrying an older one is stale'),
    sa.Column('dispatch_attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_dispatch_error', sa.Text(), nullable=True, comment='why the last send to a machine failed'),
    sa.Column('next_dispatch_at', sa.DateTime(timezone=True), nullable=True, comment='not before this time (backoff after a failed send)'),
    sa.Column('error_message', sa.Text(), nullable=True, comment="the machine's, when it failed"),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False, comment='when it last became pending'),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'assigned', 'processing', 'completed', 'failed', 'cancelled')", name=op.f('ck_inspections_status')),
    sa.CheckConstraint('priority BETWEEN 1 AND 10', name=op.f('ck_inspections_priority_range')),
    sa.ForeignKeyConstraint(['assigned_machine_id'], ['vision_orchestrator.machines.id'], name=op.f('fk_inspections_assigned_machine_id_machines'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['inspection_type'], ['vision_orchestrator.inspection_types.name'], name=op.f('fk_inspections_inspection_type_inspection_types'), onupdate='CASCADE'),
    sa.ForeignKeyConstraint(['target_machine_id'], ['vision_orchestrator.machines.id'], name=op.f('fk_inspections_target_machine_id_machines'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspections')),
    schema='vision_orchestrator'
    )
    op.create_index('ix_inspections_created_at', 'inspections', ['created_at'], unique=False, schema='vision_orchestrator')
    op.create_index('ix_inspections_inspection_type', 'inspections', ['inspection_type'], unique=False, schema='vision_orchestrator')
    op.create_index('ix_inspections_on_machine', 'inspections', ['assigned_machine_id'], unique=False, schema='vision_orchestrator', postgresql_where=sa.text("status IN ('assigned', 'processing')"))
    op.create_index('ix_inspections_queue', 'inspections', ['priority', 'queued_at', 'id'], unique=False, schema='vision_orchestrator', postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_inspections_status_created_at', 'inspections', ['status', 'created_at'], unique=False, schema='vision_orchestrator')
    op.create_index('ix_inspections_target_machine_id', 'inspections', ['target_machine_id'], unique=False, schema='vision_orchestrator')
    op.create_table('machine_credentials',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('machine_id', sa.String(length=15), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False, comment='SHA-256 of the whole credential'),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['machine_id'], ['vision_orchestrator.machines.id'], name=op.f('fk_machine_credentials_machine_id_machines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_machine_credentials')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_machine_credentials_secret_hash')),
    schema='vision_orchestrator'
    )
    op.create_index('uq_machine_credentials_one_active', 'machine_credentials', ['machine_id'], unique=True, schema='vision_orchestrator', postgresql_where=sa.text('revoked_at IS NULL'))
    op.create_table('inspection_results',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('inspection_id', sa.String(length=16), nullable=False),
    sa.Column('machine_id', sa.String(length=15), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('lease', sa.Integer(), nullable=True, comment='the assignment the result answers'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='completed | failed'),
    sa.Column('results', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('processing_time_seconds', sa.Double(), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True, comment="the machine's own clock"),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('completed', 'failed')", name=op.f('ck_inspection_results_status')),
    sa.ForeignKeyConstraint(['inspection_id'], ['vision_orchestrator.inspections.id'], name=op.f('fk_inspection_results_inspection_id_inspections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_results')),
    sa.UniqueConstraint('inspection_id', 'idempotency_key', name=op.f('uq_inspection_results_inspection_id_idempotency_key')),
    schema='vision_orchestrator'
    )
    op.create_index('ix_inspection_results_machine_id_received_at', 'inspection_results', ['machine_id', 'received_at'], unique=False, schema='vision_orchestrator')
    op.create_table('inspection_status_history',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('inspection_id', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True, comment='null for the creation'),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('machine_id', sa.String(length=15), nullable=True),
    sa.Column('actor', sa.String(length=220), nullable=False, comment='user:<name>, api_key:<name>, machine:<id> or system'),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['vision_orchestrator.inspections.id'], name=op.f('fk_inspection_status_history_inspection_id_inspections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_status_history')),
    schema='vision_orchestrator'
    )
    op.create_index('ix_inspection_status_history_inspection_id_id', 'inspection_status_history', ['inspection_id', 'id'], unique=False, schema='vision_orchestrator')


def downgrade() -> None:
    op.drop_index('ix_inspection_status_history_inspection_id_id', table_name='inspection_status_history', schema='vision_orchestrator')
    op.drop_table('inspection_status_history', schema='vision_orchestrator')
    op.drop_index('ix_inspection_results_machine_id_received_at', table_name='inspection_results', schema='vision_orchestrator')
    op.drop_table('inspection_results', schema='vision_orchestrator')
    op.drop_index('uq_machine_credentials_one_active', table_name='machine_credentials', schema='vision_orchestrator', postgresql_where=sa.text('revoked_at IS NULL'))
    op.drop_table('machine_credentials', schema='vision_orchestrator')
    op.drop_index('ix_inspections_target_machine_id', table_name='inspections', schema='vision_orchestrator')
    op.drop_index('ix_inspections_status_created_at', table_name='inspections', schema='vision_orchestrator')
    op.drop_index('ix_inspections_queue', table_name='inspections', schema='vision_orchestrator', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_inspections_on_machine', table_name='inspections', schema='vision_orchestrator', postgresql_where=sa.text("status IN ('assigned', 'processing')"))
    op.drop_index('ix_inspections_inspection_type', table_name='inspections', schema='vision_orchestrator')
    op.drop_index('ix_inspections_created_at', table_name='inspections', schema='vision_orchestrator')
    op.drop_table('inspections', schema='vision_orchestrator')
    op.drop_index('ix_machines_supported_inspection_types', table_name='machines', schema='vision_orchestrator', postgresql_using='gin')
    op.drop_index('ix_machines_status', table_name='machines', schema='vision_orchestrator')
    op.drop_table('machines', schema='vision_orchestrator')
    op.drop_table('inspection_types', schema='vision_orchestrator')
    op.drop_index('ix_heartbeats_machine_id_received_at', table_name='heartbeats', schema='vision_orchestrator')
    op.drop_table('heartbeats', schema='vision_orchestrator')
