"""A tenant's tables: devices, sensors, readings (time-partitioned), latest values, rejected readings, thresholds.

Readings are partitioned by day: with TimescaleDB available the table becomes a hypertable (1-day chunks,
compressed after 7 days, segmented by device and sensor); otherwise it is a plain PostgreSQL table partitioned
by range on `ts`, whose daily partitions `tenancy.partitions` creates on demand.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
EMPTY_JSON = sa.text("'{}'::jsonb")


def timescaledb_usable(bind: Connection) -> bool:
    """Whether the timescaledb extension is installed here, or can be (it must also be preloaded by the server)."""
    if bind.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")):
        return True
    if not bind.scalar(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")):
        return False
    try:
        # A savepoint, so a refusal (no privilege, not preloaded) leaves the migration's transaction usable.
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except DBAPIError:
        return False
    return True


def upgrade(schema: str) -> None:
    bind = op.get_bind()
    op.create_table(
        "devices",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("labels", JSONB(), server_default=EMPTY_JSON, nullable=False),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("asset", sa.Text(), nullable=True),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_devices"),
        schema=schema,
    )
    op.create_table(
        "sensors",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("sensor", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("labels", JSONB(), server_default=EMPTY_JSON, nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], [f"{schema}.devices.device_id"], name="fk_sensors_device_id_devices", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("device_id", "sensor", name="pk_sensors"),
        schema=schema,
    )

    timescale = timescaledb_usable(bind)
    partitioning: dict[str, Any] = {} if timescale else {"postgresql_partition_by": "RANGE (ts)"}
    op.create_table(
        "readings",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("sensor", sa.Text(), nullable=False),
        sa.Column("ts", TIMESTAMP, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("received_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "sensor", "ts", name="pk_readings"),
        schema=schema,
        **partitioning,
    )
    if timescale:
        readings = f'"{schema}".readings'
        bind.execute(
            sa.text("SELECT create_hypertable(CAST(:rel AS regclass), 'ts', chunk_time_interval => INTERVAL '1 day')"),
            {"rel": readings},
        )
        bind.execute(
            sa.text(
                f"ALTER TABLE {readings} SET (timescaledb.compress, "
                "timescaledb.compress_segmentby = 'device_id, sensor', timescaledb.compress_orderby = 'ts DESC')"
            )
        )
        bind.execute(
            sa.text("SELECT add_compression_policy(CAST(:rel AS regclass), INTERVAL '7 days')"), {"rel": readings}
        )

    op.create_table(
        "latest_readings",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("sensor", sa.Text(), nullable=False),
        sa.Column("ts", TIMESTAMP, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("received_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "sensor", name="pk_latest_readings"),
        schema=schema,
    )
    op.create_table(
        "rejected_readings",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("received_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("sensor", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True, comment="the message, truncated to 4 KiB"),
        sa.CheckConstraint("source IN ('mqtt', 'http')", name="ck_rejected_readings_source"),
        sa.PrimaryKeyConstraint("id", name="pk_rejected_readings"),
        schema=schema,
    )
    op.create_index("ix_rejected_readings_received_at", "rejected_readings", ["received_at"], schema=schema)
    op.create_table(
        "threshold_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True, comment="NULL: every device"),
        sa.Column("sensor", sa.Text(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.Column("hysteresis", sa.Float(), server_default="0", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("min_value IS NOT NULL OR max_value IS NOT NULL", name="ck_threshold_rules_bounds"),
        sa.CheckConstraint("hysteresis >= 0", name="ck_threshold_rules_hysteresis"),
        sa.PrimaryKeyConstraint("id", name="pk_threshold_rules"),
        schema=schema,
    )
    op.create_index("ix_threshold_rules_sensor", "threshold_rules", ["sensor"], schema=schema)
    op.create_table(
        "threshold_states",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("ts", TIMESTAMP, nullable=True),
        sa.Column("changed_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("state IN ('normal', 'below', 'above')", name="ck_threshold_states_state"),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            [f"{schema}.threshold_rules.id"],
            name="fk_threshold_states_rule_id_threshold_rules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", "device_id", name="pk_threshold_states"),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    for table in (
        "threshold_states",
        "threshold_rules",
        "rejected_readings",
        "latest_readings",
        "readings",
        "sensors",
        "devices",
    ):
        op.drop_table(table, schema=schema)
