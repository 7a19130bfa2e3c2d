"""One open upload session per recording: the recorder's session id is unique among an owner's open sessions; and
an index to find a recording by its recorder's session id once its session's row is gone.

Two create-session calls for the same recording at once could each find no session and insert one; the index makes
the second insert conflict, and the service answers it with the session the first one opened. Duplicates an older
version left are resolved first: the newest open session of each recording stays, the others are marked expired
(their partial data goes when expired sessions are purged).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "recording_storage"
INDEX = "uq_upload_sessions_open_client_session"
RECORDINGS_INDEX = "ix_recordings_owner_client_session"


def upgrade() -> None:
    op.execute(
        sa.text(
            f"""
            WITH ranked AS (
                SELECT id, row_number() OVER (
                    PARTITION BY owner_kind, owner_id, client_session_id ORDER BY created_at DESC, id DESC
                ) AS position
                FROM {SCHEMA}.upload_sessions
                WHERE status = 'open'
            ), superseded AS (
                UPDATE {SCHEMA}.upload_sessions SET status = 'expired'
                WHERE id IN (SELECT id FROM ranked WHERE position > 1)
                RETURNING id
            )
            UPDATE {SCHEMA}.upload_files SET received = 0, complete = false, sha256 = NULL,
                writer_token = NULL, lease_until = NULL
            WHERE session_id IN (SELECT id FROM superseded)
            """
        )
    )
    op.create_index(
        INDEX,
        "upload_sessions",
        ["owner_kind", "owner_id", "client_session_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(RECORDINGS_INDEX, "recordings", ["owner_kind", "owner_id", "client_session_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index(RECORDINGS_INDEX, "recordings", schema=SCHEMA)
    op.drop_index(INDEX, "upload_sessions", schema=SCHEMA)
