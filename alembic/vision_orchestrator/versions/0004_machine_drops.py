"""Cancels and drops owed to machines: an inspection cancelled while on a machine, or re-queued while its
machine was offline, until the machine has been told.

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

SCHEMA = "vision_orchestrator"


def upgrade() -> None:
    op.create_table('machine_drops',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('machine_id', sa.String(length=15), nullable=False),
    sa.Column('inspection_id', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False, comment="the inspection's lease while it was on the machine"),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('tries', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_try_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True, comment="the machine's answer once settled"),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("reason IN ('cancelled', 'reassigned')", name=op.f('ck_machine_drops_reason')),
    sa.ForeignKeyConstraint(['inspection_id'], [f'{SCHEMA}.inspections.id'], name=op.f('fk_machine_drops_inspection_id_inspections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['machine_id'], [f'{SCHEMA}.machines.id'], name=op.f('fk_machine_drops_machine_id_machines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_machine_drops')),
    schema=SCHEMA
    )
    op.create_index('ix_machine_drops_owed', 'machine_drops', ['machine_id', 'id'], unique=False, schema=SCHEMA, postgresql_where=sa.text('settled_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_machine_drops_owed', table_name='machine_drops', schema=SCHEMA, postgresql_where=sa.text('settled_at IS NULL'))
    op.drop_table('machine_drops', schema=SCHEMA)
