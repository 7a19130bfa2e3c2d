"""Ingest: gateway readings (collection logs, partitioned by UTC day with a default partition), rejected
messages, camera analytic events, CAM-BUS collectors, and the CAM-BUS topic of a camera.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "rtls_cambus"


def upgrade() -> None:
    op.add_column(
        "devices",
        sa.Column(
            "topic",
            sa.String(length=400),
            nullable=True,
            comment="cameras: CAM-BUS topic prefix of its last message, where its commands go",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "gateway_readings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway_id", sa.BigInteger(), nullable=False),
        sa.Column("gateway_mac", sa.String(length=17), nullable=False),
        sa.Column("tag_mac", sa.String(length=17), nullable=False),
        sa.Column(
            "rssi", sa.SmallInteger(), nullable=False, comment="dBm as the gateway reported it, before its offset"
        ),
        sa.PrimaryKeyConstraint("id", "received_at", name=op.f("pk_gateway_readings")),
        schema=SCHEMA,
        postgresql_partition_by="RANGE (received_at)",
    )
    op.create_index(
        "ix_gateway_readings_tag_mac_received_at", "gateway_readings", ["tag_mac", "received_at"], schema=SCHEMA
    )
    op.create_index(
        "ix_gateway_readings_gateway_id_received_at",
        "gateway_readings",
        ["gateway_id", "received_at"],
        schema=SCHEMA,
    )
    # Rows of a day whose partition is missing land here, so a write never fails when maintenance is late.
    op.execute(f'CREATE TABLE "{SCHEMA}".gateway_readings_default PARTITION OF "{SCHEMA}".gateway_readings DEFAULT')

    op.create_table(
        "rejected_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("reason_class", sa.String(length=40), nullable=False, comment="e.g. malformed_json, rssi_range"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reading_index", sa.Integer(), nullable=True, comment="which reading of the message, if one"),
        sa.Column(
            "payload", sa.LargeBinary(), nullable=False, comment="the message (or reading) as received, cut short"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_messages")),
        schema=SCHEMA,
    )
    op.create_index("ix_rejected_messages_received_at", "rejected_messages", ["received_at"], schema=SCHEMA)
    op.create_index(op.f("ix_rejected_messages_reason_class"), "rejected_messages", ["reason_class"], schema=SCHEMA)

    op.create_table(
        "camera_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.BigInteger(), nullable=False),
        sa.Column("analytic", sa.String(length=100), nullable=False, comment="the topic's <analytic>, e.g. intrusion"),
        sa.Column(
            "event_id", sa.String(length=200), nullable=False, comment="the camera's id, stable over new/update/end"
        ),
        sa.Column("type", sa.String(length=8), nullable=False, comment="last message: new | update | end"),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("sub_label", sa.String(length=200), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("top_score", sa.Double(), nullable=True),
        sa.Column(
            "zones",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
            comment="zones the object is in now",
        ),
        sa.Column("entered_zones", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("messages", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment="the last message's event object"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"], [f"{SCHEMA}.devices.id"], name=op.f("fk_camera_events_camera_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera_events")),
        sa.UniqueConstraint(
            "camera_id", "analytic", "event_id", name=op.f("uq_camera_events_camera_id_analytic_event_id")
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_camera_events_camera_id_started_at", "camera_events", ["camera_id", "started_at"], schema=SCHEMA
    )

    op.create_table(
        "cambus_collectors",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("building_code", sa.String(length=64), nullable=False),
        sa.Column("building_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"],
            [f"{SCHEMA}.buildings.id"],
            name=op.f("fk_cambus_collectors_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cambus_collectors")),
        sa.UniqueConstraint("tenant", "building_code", name=op.f("uq_cambus_collectors_tenant_building_code")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("cambus_collectors", schema=SCHEMA)
    op.drop_index("ix_camera_events_camera_id_started_at", table_name="camera_events", schema=SCHEMA)
    op.drop_table("camera_events", schema=SCHEMA)
    op.drop_index(op.f("ix_rejected_messages_reason_class"), table_name="rejected_messages", schema=SCHEMA)
    op.drop_index("ix_rejected_messages_received_at", table_name="rejected_messages", schema=SCHEMA)
    op.drop_table("rejected_messages", schema=SCHEMA)
    op.drop_table("gateway_readings", schema=SCHEMA)
    op.drop_column("devices", "topic", schema=SCHEMA)
