"""Upload sessions, the files they receive, and finished recordings.

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

SCHEMA = 'recording_storage'


def upgrade() -> None:
    op.create_table('recordings',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('session_id', sa.Text(), nullable=False, comment='the upload session it came from'),
    sa.Column('client_session_id', sa.Text(), nullable=False),
    sa.Column('owner_kind', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('tenant', sa.Text(), nullable=True),
    sa.Column('wats_user', sa.Text(), nullable=True),
    sa.Column('wats_user_machine', sa.Text(), nullable=True),
    sa.Column('wats_user_ip', sa.Text(), nullable=True),
    sa.Column('server_name', sa.Text(), nullable=True),
    sa.Column('server_ip', sa.Text(), nullable=True),
    sa.Column('server_user', sa.Text(), nullable=True),
    sa.Column('connection_type', sa.Text(), nullable=True),
    sa.Column('con_codigo', sa.Integer(), nullable=True),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment='connection_info and metadata as sent'),
    sa.Column('video_key', sa.Text(), nullable=False),
    sa.Column('video_size', sa.BigInteger(), nullable=False),
    sa.Column('video_sha256', sa.Text(), nullable=False),
    sa.Column('metadata_key', sa.Text(), nullable=True),
    sa.Column('metadata_size', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("video_sha256 ~ '^[0-9a-f]{64}$'", name=op.f('ck_recordings_video_sha256_hex')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings')),
    sa.UniqueConstraint('session_id', name=op.f('uq_recordings_session_id')),
    schema=SCHEMA
    )
    op.create_index('ix_recordings_created_at', 'recordings', ['created_at'], unique=False, schema=SCHEMA)
    op.create_index('ix_recordings_server_ip', 'recordings', ['server_ip'], unique=False, schema=SCHEMA)
    op.create_index('ix_recordings_server_name', 'recordings', ['server_name'], unique=False, schema=SCHEMA)
    op.create_index('ix_recordings_start_time', 'recordings', ['start_time'], unique=False, schema=SCHEMA)
    op.create_index('ix_recordings_tenant_created_at', 'recordings', ['tenant', 'created_at'], unique=False, schema=SCHEMA)
    op.create_index('ix_recordings_wats_user', 'recordings', ['wats_user'], unique=False, schema=SCHEMA)
    op.create_index('ix_recordings_wats_user_machine', 'recordings', ['wats_user_machine'], unique=False, schema=SCHEMA)
    op.create_table('upload_sessions',
    sa.Column('id', sa.Text(), nullable=False, comment='ups_<32 hex>, made by the server'),
    sa.Column('client_session_id', sa.Text(), nullable=False, comment="the recorder's own session id"),
    sa.Column('owner_kind', sa.Text(), nullable=False, comment='user | api_key'),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('tenant', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), server_default='open', nullable=False),
    sa.Column('video_size', sa.BigInteger(), nullable=False, comment='declared size of the video in bytes'),
    sa.Column('video_sha256', sa.Text(), nullable=True, comment='declared SHA-256 of the video, hex'),
    sa.Column('metadata_size', sa.BigInteger(), nullable=True, comment='declared size of the metadata file'),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment='connection_info and metadata as sent'),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recording_id', sa.UUID(), nullable=True),
    sa.CheckConstraint("owner_kind IN ('user', 'api_key')", name=op.f('ck_upload_sessions_owner_kind_known')),
    sa.CheckConstraint("status IN ('open', 'completed', 'expired')", name=op.f('ck_upload_sessions_status_known')),
    sa.CheckConstraint("video_sha256 IS NULL OR video_sha256 ~ '^[0-9a-f]{64}$'", name=op.f('ck_upload_sessions_video_sha256_hex')),
    sa.CheckConstraint('metadata_size IS NULL OR metadata_size >= 0', name=op.f('ck_upload_sessions_metadata_size_not_negative')),
    sa.CheckConstraint('video_size >= 0', name=op.f('ck_upload_sessions_video_size_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upload_sessions')),
    schema=SCHEMA
    )
    op.create_index('ix_upload_sessions_owner', 'upload_sessions', ['owner_kind', 'owner_id'], unique=False, schema=SCHEMA)
    op.create_index('ix_upload_sessions_status_expires_at', 'upload_sessions', ['status', 'expires_at'], unique=False, schema=SCHEMA)
    op.create_table('upload_files',
    sa.Column('session_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False, comment='video | metadata'),
    sa.Column('received', sa.BigInteger(), server_default=sa.text('0'), nullable=False, comment='bytes stored so far'),
    sa.Column('complete', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('sha256', sa.Text(), nullable=True, comment='SHA-256 of the received bytes, once complete'),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('video', 'metadata')", name=op.f('ck_upload_files_kind_known')),
    sa.CheckConstraint("sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'", name=op.f('ck_upload_files_sha256_hex')),
    sa.CheckConstraint('received >= 0', name=op.f('ck_upload_files_received_not_negative')),
    sa.ForeignKeyConstraint(['session_id'], [f'{SCHEMA}.upload_sessions.id'], name=op.f('fk_upload_files_session_id_upload_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'kind', name=op.f('pk_upload_files')),
    schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table('upload_files', schema=SCHEMA)
    op.drop_index('ix_upload_sessions_status_expires_at', table_name='upload_sessions', schema=SCHEMA)
    op.drop_index('ix_upload_sessions_owner', table_name='upload_sessions', schema=SCHEMA)
    op.drop_table('upload_sessions', schema=SCHEMA)
    op.drop_index('ix_recordings_wats_user_machine', table_name='recordings', schema=SCHEMA)
    op.drop_index('ix_recordings_wats_user', table_name='recordings', schema=SCHEMA)
    op.drop_index('ix_recordings_tenant_created_at', table_name='recordings', schema=SCHEMA)
    op.drop_index('ix_recordings_start_time', table_name='recordings', schema=SCHEMA)
    op.drop_index('ix_recordings_server_name', table_name='recordings', schema=SCHEMA)
    op.drop_index('ix_recordings_server_ip', table_name='recordings', schema=SCHEMA)
    op.drop_index('ix_recordings_created_at', table_name='recordings', schema=SCHEMA)
    op.drop_table('recordings', schema=SCHEMA)
