"""Alert rules, the alerts they raise, and each rule's cooldown per subject.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("cooldown_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=True, comment="suite_event: the event type it matches"),
        sa.Column("zone_id", sa.BigInteger(), nullable=True),
        sa.Column("person_id", sa.BigInteger(), nullable=True),
        sa.Column("person_group_id", sa.BigInteger(), nullable=True),
        sa.Column("gateway_id", sa.BigInteger(), nullable=True),
        sa.Column("camera_id", sa.BigInteger(), nullable=True),
        sa.Column("camera_group_id", sa.BigInteger(), nullable=True),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("floor_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="what the kind needs besides references",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('zone_entry', 'zone_absence', 'person_not_seen', 'gateway_offline', 'camera_event', 'suite_event')",
            name=op.f("ck_alert_rules_kind"),
        ),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_alert_rules_severity")),
        sa.CheckConstraint("cooldown_seconds >= 0", name=op.f("ck_alert_rules_cooldown_not_negative")),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["rtls_cambus.buildings.id"],
            name=op.f("fk_alert_rules_building_id_buildings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["camera_group_id"],
            ["rtls_cambus.camera_groups.id"],
            name=op.f("fk_alert_rules_camera_group_id_camera_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["rtls_cambus.devices.id"], name=op.f("fk_alert_rules_camera_id_devices"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["floor_id"], ["rtls_cambus.floors.id"], name=op.f("fk_alert_rules_floor_id_floors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["rtls_cambus.devices.id"],
            name=op.f("fk_alert_rules_gateway_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_group_id"],
            ["rtls_cambus.person_groups.id"],
            name=op.f("fk_alert_rules_person_group_id_person_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["rtls_cambus.people.id"], name=op.f("fk_alert_rules_person_id_people"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["rtls_cambus.zones.id"], name=op.f("fk_alert_rules_zone_id_zones"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
        schema="rtls_cambus",
    )
    op.create_index(
        op.f("ix_alert_rules_building_id"), "alert_rules", ["building_id"], unique=False, schema="rtls_cambus"
    )
    op.create_index(
        op.f("ix_alert_rules_camera_group_id"), "alert_rules", ["camera_group_id"], unique=False, schema="rtls_cambus"
    )
    op.create_index(op.f("ix_alert_rules_camera_id"), "alert_rules", ["camera_id"], unique=False, schema="rtls_cambus")
    op.create_index(op.f("ix_alert_rules_floor_id"), "alert_rules", ["floor_id"], unique=False, schema="rtls_cambus")
    op.create_index(
        op.f("ix_alert_rules_gateway_id"), "alert_rules", ["gateway_id"], unique=False, schema="rtls_cambus"
    )
    op.create_index(
        "ix_alert_rules_kind_enabled", "alert_rules", ["kind", "enabled"], unique=False, schema="rtls_cambus"
    )
    op.create_index(
        op.f("ix_alert_rules_person_group_id"), "alert_rules", ["person_group_id"], unique=False, schema="rtls_cambus"
    )
    op.create_index(op.f("ix_alert_rules_person_id"), "alert_rules", ["person_id"], unique=False, schema="rtls_cambus")
    op.create_index(op.f("ix_alert_rules_zone_id"), "alert_rules", ["zone_id"], unique=False, schema="rtls_cambus")
    op.create_table(
        "alert_cooldowns",
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("cooldown_key", sa.String(length=200), nullable=False),
        sa.Column("last_alert_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["rtls_cambus.alert_rules.id"],
            name=op.f("fk_alert_cooldowns_rule_id_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", "cooldown_key", name=op.f("pk_alert_cooldowns")),
        schema="rtls_cambus",
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=True, comment="null once the rule is deleted"),
        sa.Column("rule_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column(
            "dedup_key",
            sa.String(length=300),
            nullable=False,
            comment="the situation: one alert per rule and situation",
        ),
        sa.Column(
            "cooldown_key", sa.String(length=200), nullable=False, comment="the subject the rule's cooldown applies to"
        ),
        sa.Column("person_id", sa.BigInteger(), nullable=True),
        sa.Column("zone_id", sa.BigInteger(), nullable=True),
        sa.Column("floor_id", sa.BigInteger(), nullable=True),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("gateway_id", sa.BigInteger(), nullable=True),
        sa.Column("camera_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "source_event_id", sa.String(length=64), nullable=True, comment="the event it was raised from, if one"
        ),
        sa.Column("source_event_type", sa.String(length=200), nullable=True),
        sa.Column(
            "tenant",
            sa.String(length=100),
            nullable=True,
            comment="the source event's tenant; null for the site's own alerts",
        ),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by_id", sa.BigInteger(), nullable=True, comment="identity user or API key id"),
        sa.Column("acknowledged_by_kind", sa.String(length=20), nullable=True, comment="user or api_key"),
        sa.Column("acknowledged_by_name", sa.String(length=200), nullable=True),
        sa.Column("acknowledge_note", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.BigInteger(), nullable=True),
        sa.Column("resolved_by_kind", sa.String(length=20), nullable=True),
        sa.Column("resolved_by_name", sa.String(length=200), nullable=True),
        sa.Column("resolve_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('zone_entry', 'zone_absence', 'person_not_seen', 'gateway_offline', 'camera_event', 'suite_event')",
            name=op.f("ck_alert_events_kind"),
        ),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_alert_events_severity")),
        sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alert_events_status")),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["rtls_cambus.alert_rules.id"],
            name=op.f("fk_alert_events_rule_id_alert_rules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
        sa.UniqueConstraint("rule_id", "dedup_key", name=op.f("uq_alert_events_rule_id_dedup_key")),
        schema="rtls_cambus",
    )
    op.create_index("ix_alert_events_created_at", "alert_events", ["created_at"], unique=False, schema="rtls_cambus")
    op.create_index(
        "ix_alert_events_person_id_created_at",
        "alert_events",
        ["person_id", "created_at"],
        unique=False,
        schema="rtls_cambus",
    )
    op.create_index(
        "ix_alert_events_status_severity", "alert_events", ["status", "severity"], unique=False, schema="rtls_cambus"
    )
    op.create_index(op.f("ix_alert_events_tenant"), "alert_events", ["tenant"], unique=False, schema="rtls_cambus")
    op.create_index(
        "ix_alert_events_zone_id_created_at",
        "alert_events",
        ["zone_id", "created_at"],
        unique=False,
        schema="rtls_cambus",
    )


def downgrade() -> None:
    op.drop_index("ix_alert_events_zone_id_created_at", table_name="alert_events", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_events_tenant"), table_name="alert_events", schema="rtls_cambus")
    op.drop_index("ix_alert_events_status_severity", table_name="alert_events", schema="rtls_cambus")
    op.drop_index("ix_alert_events_person_id_created_at", table_name="alert_events", schema="rtls_cambus")
    op.drop_index("ix_alert_events_created_at", table_name="alert_events", schema="rtls_cambus")
    op.drop_table("alert_events", schema="rtls_cambus")
    op.drop_table("alert_cooldowns", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_zone_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_person_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_person_group_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_index("ix_alert_rules_kind_enabled", table_name="alert_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_gateway_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_floor_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_camera_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_camera_group_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_index(op.f("ix_alert_rules_building_id"), table_name="alert_rules", schema="rtls_cambus")
    op.drop_table("alert_rules", schema="rtls_cambus")
