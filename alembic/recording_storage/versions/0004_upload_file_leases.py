"""Leases on upload files: which request writes a file, and until when, instead of a row lock held for the body.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "recording_storage"


def upgrade() -> None:
    op.add_column(
        "upload_files",
        sa.Column("writer_token", sa.UUID(), nullable=True, comment="the request writing the file, while leased"),
        schema=SCHEMA,
    )
    op.add_column(
        "upload_files",
        sa.Column(
            "lease_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the writer's lease ends then (database clock) unless renewed",
        ),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "lease_whole", "upload_files", "(writer_token IS NULL) = (lease_until IS NULL)", schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_constraint("ck_upload_files_lease_whole", "upload_files", schema=SCHEMA)
    op.drop_column("upload_files", "lease_until", schema=SCHEMA)
    op.drop_column("upload_files", "writer_token", schema=SCHEMA)
