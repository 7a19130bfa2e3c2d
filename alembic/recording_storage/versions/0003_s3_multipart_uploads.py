"""The S3 backend's bookkeeping: multipart uploads in progress, their parts, and finished objects.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = 'recording_storage'


def upgrade() -> None:
    op.create_table('s3_uploads',
    sa.Column('key', sa.Text(), nullable=False, comment="the storage key (a partial upload's)"),
    sa.Column('object_key', sa.Text(), nullable=False, comment='the S3 key the multipart upload completes into'),
    sa.Column('upload_id', sa.Text(), nullable=True, comment='S3 multipart upload id; null until a first part'),
    sa.Column('tail_key', sa.Text(), nullable=True, comment='S3 staging object of the bytes after the parts'),
    sa.Column('tail_size', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('tail_sha256', sa.Text(), nullable=True, comment='SHA-256 of the tail object, hex'),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('tail_size >= 0', name=op.f('ck_s3_uploads_tail_size_not_negative')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_s3_uploads')),
    schema=SCHEMA
    )
    op.create_table('s3_upload_parts',
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('etag', sa.Text(), nullable=False, comment='the ETag S3 answered for the part'),
    sa.Column('sha256', sa.Text(), nullable=False, comment='SHA-256 of the part, hex (sent as its S3 checksum)'),
    sa.CheckConstraint('number BETWEEN 1 AND 10000', name=op.f('ck_s3_upload_parts_number_in_range')),
    sa.CheckConstraint('size > 0', name=op.f('ck_s3_upload_parts_size_positive')),
    sa.ForeignKeyConstraint(['key'], [f'{SCHEMA}.s3_uploads.key'], name=op.f('fk_s3_upload_parts_key_s3_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', 'number', name=op.f('pk_s3_upload_parts')),
    schema=SCHEMA
    )
    op.create_table('s3_objects',
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('object_key', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('size >= 0', name=op.f('ck_s3_objects_size_not_negative')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_s3_objects')),
    schema=SCHEMA
    )
    op.create_index('ix_s3_objects_object_key', 's3_objects', ['object_key'], unique=False, schema=SCHEMA)


def downgrade() -> None:
    op.drop_index('ix_s3_objects_object_key', table_name='s3_objects', schema=SCHEMA)
    op.drop_table('s3_objects', schema=SCHEMA)
    op.drop_table('s3_upload_parts', schema=SCHEMA)
    op.drop_table('s3_uploads', schema=SCHEMA)
