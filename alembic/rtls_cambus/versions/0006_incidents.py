"""Incidents with their status history, assignees, messages and attachments; support groups; incident rules.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "support_groups",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_support_groups_name")),
        schema="rtls_cambus",
    )
    op.create_table(
        "incident_rules",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False, comment="the suite event type it matches"),
        sa.Column(
            "conditions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
            comment="[{path, op, value}], all must hold",
        ),
        sa.Column(
            "title_template",
            sa.String(length=500),
            nullable=False,
            comment="{dotted.path} substituted from the payload",
        ),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("support_group_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_incident_rules_severity")
        ),
        sa.ForeignKeyConstraint(
            ["support_group_id"],
            ["rtls_cambus.support_groups.id"],
            name=op.f("fk_incident_rules_support_group_id_support_groups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_incident_rules_name")),
        schema="rtls_cambus",
    )
    op.create_index(
        op.f("ix_incident_rules_event_type"), "incident_rules", ["event_type"], unique=False, schema="rtls_cambus"
    )
    op.create_index(
        op.f("ix_incident_rules_support_group_id"),
        "incident_rules",
        ["support_group_id"],
        unique=False,
        schema="rtls_cambus",
    )
    op.create_table(
        "support_group_members",
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False, comment="identity user id"),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["rtls_cambus.support_groups.id"],
            name=op.f("fk_support_group_members_group_id_support_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_support_group_members")),
        schema="rtls_cambus",
    )
    op.create_index(
        op.f("ix_support_group_members_user_id"),
        "support_group_members",
        ["user_id"],
        unique=False,
        schema="rtls_cambus",
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("floor_id", sa.BigInteger(), nullable=True),
        sa.Column("zone_id", sa.BigInteger(), nullable=True),
        sa.Column("support_group_id", sa.BigInteger(), nullable=True),
        sa.Column("rule_id", sa.BigInteger(), nullable=True, comment="the rule that opened it"),
        sa.Column("source_event_id", sa.String(length=64), nullable=True, comment="the event that opened it"),
        sa.Column("source_event_type", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True, comment="identity user id; null when a rule opened it"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("in_progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_incidents_severity")),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'in_progress', 'resolved', 'closed')", name=op.f("ck_incidents_status")
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["rtls_cambus.buildings.id"],
            name=op.f("fk_incidents_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["floor_id"], ["rtls_cambus.floors.id"], name=op.f("fk_incidents_floor_id_floors"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["rtls_cambus.incident_rules.id"],
            name=op.f("fk_incidents_rule_id_incident_rules"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["support_group_id"],
            ["rtls_cambus.support_groups.id"],
            name=op.f("fk_incidents_support_group_id_support_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["rtls_cambus.zones.id"], name=op.f("fk_incidents_zone_id_zones"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("rule_id", "source_event_id", name=op.f("uq_incidents_rule_id_source_event_id")),
        schema="rtls_cambus",
    )
    op.create_index(op.f("ix_incidents_building_id"), "incidents", ["building_id"], unique=False, schema="rtls_cambus")
    op.create_index(op.f("ix_incidents_floor_id"), "incidents", ["floor_id"], unique=False, schema="rtls_cambus")
    op.create_index(op.f("ix_incidents_severity"), "incidents", ["severity"], unique=False, schema="rtls_cambus")
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"], unique=False, schema="rtls_cambus")
    op.create_index(
        op.f("ix_incidents_support_group_id"), "incidents", ["support_group_id"], unique=False, schema="rtls_cambus"
    )
    op.create_index(op.f("ix_incidents_zone_id"), "incidents", ["zone_id"], unique=False, schema="rtls_cambus")
    op.create_table(
        "incident_assignees",
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False, comment="identity user id"),
        sa.Column("assigned_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["rtls_cambus.incidents.id"],
            name=op.f("fk_incident_assignees_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "user_id", name=op.f("pk_incident_assignees")),
        schema="rtls_cambus",
    )
    op.create_index(
        op.f("ix_incident_assignees_user_id"), "incident_assignees", ["user_id"], unique=False, schema="rtls_cambus"
    )
    op.create_table(
        "incident_attachments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "stored_name", sa.String(length=100), nullable=False, comment="made by the server, never the client's"
        ),
        sa.Column("original_name", sa.String(length=255), nullable=True, comment="as uploaded, for display only"),
        sa.Column("content_type", sa.String(length=100), nullable=False, comment="from the magic bytes"),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("uploaded_by", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["rtls_cambus.incidents.id"],
            name=op.f("fk_incident_attachments_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_attachments")),
        sa.UniqueConstraint("stored_name", name=op.f("uq_incident_attachments_stored_name")),
        schema="rtls_cambus",
    )
    op.create_index(
        op.f("ix_incident_attachments_incident_id"),
        "incident_attachments",
        ["incident_id"],
        unique=False,
        schema="rtls_cambus",
    )
    op.create_table(
        "incident_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("author_kind", sa.String(length=20), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["rtls_cambus.incidents.id"],
            name=op.f("fk_incident_messages_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_messages")),
        schema="rtls_cambus",
    )
    op.create_index(
        op.f("ix_incident_messages_incident_id"),
        "incident_messages",
        ["incident_id"],
        unique=False,
        schema="rtls_cambus",
    )
    op.create_table(
        "incident_status_changes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True, comment="null for the opening"),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("changed_by", sa.BigInteger(), nullable=True, comment="identity user or API key id"),
        sa.Column("changed_by_kind", sa.String(length=20), nullable=False, comment="user, api_key or rule"),
        sa.Column("changed_by_name", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["rtls_cambus.incidents.id"],
            name=op.f("fk_incident_status_changes_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_status_changes")),
        schema="rtls_cambus",
    )
    op.create_index(
        op.f("ix_incident_status_changes_incident_id"),
        "incident_status_changes",
        ["incident_id"],
        unique=False,
        schema="rtls_cambus",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_incident_status_changes_incident_id"), table_name="incident_status_changes", schema="rtls_cambus"
    )
    op.drop_table("incident_status_changes", schema="rtls_cambus")
    op.drop_index(op.f("ix_incident_messages_incident_id"), table_name="incident_messages", schema="rtls_cambus")
    op.drop_table("incident_messages", schema="rtls_cambus")
    op.drop_index(op.f("ix_incident_attachments_incident_id"), table_name="incident_attachments", schema="rtls_cambus")
    op.drop_table("incident_attachments", schema="rtls_cambus")
    op.drop_index(op.f("ix_incident_assignees_user_id"), table_name="incident_assignees", schema="rtls_cambus")
    op.drop_table("incident_assignees", schema="rtls_cambus")
    op.drop_index(op.f("ix_incidents_zone_id"), table_name="incidents", schema="rtls_cambus")
    op.drop_index(op.f("ix_incidents_support_group_id"), table_name="incidents", schema="rtls_cambus")
    op.drop_index(op.f("ix_incidents_status"), table_name="incidents", schema="rtls_cambus")
    op.drop_index(op.f("ix_incidents_severity"), table_name="incidents", schema="rtls_cambus")
    op.drop_index(op.f("ix_incidents_floor_id"), table_name="incidents", schema="rtls_cambus")
    op.drop_index(op.f("ix_incidents_building_id"), table_name="incidents", schema="rtls_cambus")
    op.drop_table("incidents", schema="rtls_cambus")
    op.drop_index(op.f("ix_support_group_members_user_id"), table_name="support_group_members", schema="rtls_cambus")
    op.drop_table("support_group_members", schema="rtls_cambus")
    op.drop_index(op.f("ix_incident_rules_support_group_id"), table_name="incident_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_incident_rules_event_type"), table_name="incident_rules", schema="rtls_cambus")
    op.drop_table("incident_rules", schema="rtls_cambus")
    op.drop_table("support_groups", schema="rtls_cambus")
