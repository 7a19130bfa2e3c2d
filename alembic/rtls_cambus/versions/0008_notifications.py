"""Chatwoot (conversations and messages of incidents, the webhook log) and mail notifications with preferences.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "rtls_cambus"


def upgrade() -> None:
    op.create_table(
        "chatwoot_conversations",
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("inbox_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "conversation_id", sa.BigInteger(), nullable=False, comment="Chatwoot's display id, as its API and webhooks"
        ),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            [f"{SCHEMA}.incidents.id"],
            name=op.f("fk_chatwoot_conversations_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_chatwoot_conversations")),
        sa.UniqueConstraint(
            "account_id", "conversation_id", name=op.f("uq_chatwoot_conversations_account_id_conversation_id")
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "chatwoot_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "incident_message_id",
            sa.BigInteger(),
            nullable=True,
            comment="null for the conversation's opening message",
        ),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("chatwoot_message_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "direction", sa.String(length=10), nullable=False, comment="outbound (sent to Chatwoot) or inbound (from it)"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            [f"{SCHEMA}.incidents.id"],
            name=op.f("fk_chatwoot_messages_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incident_message_id"],
            [f"{SCHEMA}.incident_messages.id"],
            name=op.f("fk_chatwoot_messages_incident_message_id_incident_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatwoot_messages")),
        sa.UniqueConstraint(
            "account_id", "chatwoot_message_id", name=op.f("uq_chatwoot_messages_account_id_chatwoot_message_id")
        ),
        sa.UniqueConstraint("incident_message_id", name=op.f("uq_chatwoot_messages_incident_message_id")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_chatwoot_messages_incident_id"), "chatwoot_messages", ["incident_id"], unique=False, schema=SCHEMA
    )
    op.create_table(
        "chatwoot_deliveries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "delivery_id", sa.String(length=200), nullable=True, comment="X-Chatwoot-Delivery, the same on retries"
        ),
        sa.Column("event", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column(
            "authenticated_by",
            sa.String(length=20),
            nullable=True,
            comment="signature or token; null: not at all",
        ),
        sa.Column(
            "body",
            sa.Text(),
            nullable=False,
            comment="the raw body (UTF-8, undecodable bytes replaced); only its start when body_truncated",
        ),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True, comment="why it was refused or ignored"),
        sa.Column("incident_id", sa.BigInteger(), nullable=True, comment="the incident it reached, if any"),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatwoot_deliveries")),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_chatwoot_deliveries_accepted_delivery_id",
        "chatwoot_deliveries",
        ["delivery_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where="status IN ('queued', 'processed', 'ignored')",
    )
    op.create_index("ix_chatwoot_deliveries_received_at", "chatwoot_deliveries", ["received_at"], schema=SCHEMA)
    op.create_index("ix_chatwoot_deliveries_status", "chatwoot_deliveries", ["status"], schema=SCHEMA)
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.BigInteger(), nullable=False, comment="identity user id"),
        sa.Column("email_alerts", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("email_incidents", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_preferences")),
        schema=SCHEMA,
    )
    op.create_table(
        "mail_notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False, comment="the event it tells of"),
        sa.Column("kind", sa.String(length=20), nullable=False, comment="alert or incident"),
        sa.Column("user_id", sa.BigInteger(), nullable=False, comment="identity user id"),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column(
            "context", postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment="what the templates show"
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "due_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="held back for a digest, or the next try",
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "locked_until", sa.DateTime(timezone=True), nullable=True, comment="a sender is sending it until then"
        ),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column(
            "mail_id", sa.String(length=300), nullable=True, comment="Message-ID of the mail that carried it"
        ),
        sa.Column("in_digest", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_notifications")),
        sa.UniqueConstraint("event_id", "user_id", name=op.f("uq_mail_notifications_event_id_user_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_mail_notifications_due",
        "mail_notifications",
        ["due_at"],
        schema=SCHEMA,
        postgresql_where="status = 'pending'",
    )
    op.create_index(
        "ix_mail_notifications_recipient", "mail_notifications", ["user_id", "kind", "sent_at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("mail_notifications", schema=SCHEMA)
    op.drop_table("notification_preferences", schema=SCHEMA)
    op.drop_table("chatwoot_deliveries", schema=SCHEMA)
    op.drop_table("chatwoot_messages", schema=SCHEMA)
    op.drop_table("chatwoot_conversations", schema=SCHEMA)
