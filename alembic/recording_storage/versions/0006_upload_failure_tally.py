"""The tally of failed uploads per UTC day, tenant and reason, kept when the sessions it counts are removed.

Counting begins with this revision: today's row of sessions without a tenant is made even when nothing failed yet
(the first day of the tally is the day counting began), and the sessions that expired earlier today and are still
held are carried over, so today is whole.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "recording_storage"


def upgrade() -> None:
    op.create_table(
        "upload_failures",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False, comment="UTC day of the failure (a session's: the day it expired)"),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False, comment="expired, or the code a refused finish answered"),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("count >= 0", name=op.f("ck_upload_failures_count_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_failures")),
        sa.UniqueConstraint(
            "day",
            "tenant",
            "reason",
            name=op.f("uq_upload_failures_day_tenant_reason"),
            postgresql_nulls_not_distinct=True,
        ),
        schema=SCHEMA,
    )
    op.execute(
        sa.text(
            f"""
            INSERT INTO {SCHEMA}.upload_failures (day, tenant, reason, count)
            SELECT (expires_at AT TIME ZONE 'UTC')::date, tenant, 'expired', count(*)
            FROM {SCHEMA}.upload_sessions
            WHERE status = 'expired' AND expires_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
            GROUP BY 1, 2
            """
        )
    )
    op.execute(
        sa.text(
            f"""
            INSERT INTO {SCHEMA}.upload_failures (day, tenant, reason, count)
            VALUES ((now() AT TIME ZONE 'UTC')::date, NULL, 'expired', 0)
            ON CONFLICT (day, tenant, reason) DO NOTHING
            """
        )
    )


def downgrade() -> None:
    op.drop_table("upload_failures", schema=SCHEMA)
