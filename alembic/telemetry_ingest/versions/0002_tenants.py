"""Tenant registry, device MQTT credentials and unrouted messages.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = 'telemetry_ingest'


def upgrade() -> None:
    op.create_table('tenants',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('slug', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('schema_name', sa.Text(), nullable=False, comment='tenant_<slug>'),
    sa.Column('retention_days', sa.Integer(), server_default='365', nullable=False, comment='readings older than this are dropped'),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('retention_days BETWEEN 1 AND 3650', name=op.f('ck_tenants_retention_days_range')),
    sa.CheckConstraint("schema_name = 'tenant_' || slug", name=op.f('ck_tenants_schema_name_from_slug')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('schema_name', name=op.f('uq_tenants_schema_name')),
    sa.UniqueConstraint('slug', name=op.f('uq_tenants_slug')),
    schema=SCHEMA
    )
    op.create_table('device_credentials',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_slug', sa.Text(), nullable=False),
    sa.Column('device_id', sa.Text(), nullable=False),
    sa.Column('username', sa.Text(), nullable=False, comment='<tenant>:<device_id>'),
    sa.Column('secret_hash', sa.Text(), nullable=False, comment='sha256 hex of the secret'),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_slug'], [f'{SCHEMA}.tenants.slug'], name=op.f('fk_device_credentials_tenant_slug_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_credentials')),
    sa.UniqueConstraint('username', name=op.f('uq_device_credentials_username')),
    schema=SCHEMA
    )
    op.create_index('ix_device_credentials_tenant_slug_device_id', 'device_credentials', ['tenant_slug', 'device_id'], unique=False, schema=SCHEMA)
    op.create_index('uq_device_credentials_active', 'device_credentials', ['tenant_slug', 'device_id'], unique=True, schema=SCHEMA, postgresql_where=sa.text('revoked_at IS NULL'))
    op.create_table('unrouted_messages',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source', sa.Text(), nullable=False, comment='mqtt | http'),
    sa.Column('topic', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unrouted_messages')),
    schema=SCHEMA
    )
    op.create_index('ix_unrouted_messages_received_at', 'unrouted_messages', ['received_at'], unique=False, schema=SCHEMA)


def downgrade() -> None:
    op.drop_index('ix_unrouted_messages_received_at', table_name='unrouted_messages', schema=SCHEMA)
    op.drop_table('unrouted_messages', schema=SCHEMA)
    op.drop_index('uq_device_credentials_active', table_name='device_credentials', schema=SCHEMA, postgresql_where=sa.text('revoked_at IS NULL'))
    op.drop_index('ix_device_credentials_tenant_slug_device_id', table_name='device_credentials', schema=SCHEMA)
    op.drop_table('device_credentials', schema=SCHEMA)
    op.drop_table('tenants', schema=SCHEMA)
