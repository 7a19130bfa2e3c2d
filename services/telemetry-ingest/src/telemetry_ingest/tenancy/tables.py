"""The tables of a tenant schema, described once for every part of the service that reads or writes them.

The tenant migrations create the real tables (`tenancy/migrations/versions/`); these `Table` objects carry no
schema and are bound to one at run time, three ways, all from the same description:

- on request paths `TenantScope` puts the tenant's schema on the search path, so unqualified names resolve there;
- elsewhere a statement runs with `in_tenant(schema)` as execution options (`schema_translate_map`);
- raw asyncpg statements of the write path take their table name from `qualified` and their column lists from
  `column_list` and `unnest_arrays`.

Never `create_all` these: a column added here needs its tenant migration too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Float, Integer, MetaData, Table, Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from mirante.db import NAMING_CONVENTION
from telemetry_ingest.tenancy.naming import check_schema, quoted

TIMESTAMP: Final = DateTime(timezone=True)

tenant_metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""The tenant tables, without a schema (see the module documentation for how they are bound to one)."""

devices = Table(
    "devices",
    tenant_metadata,
    Column("device_id", Text, primary_key=True),
    Column("name", Text),
    Column("labels", JSONB, nullable=False),
    Column("site", Text),
    Column("asset", Text),
    Column("first_seen", TIMESTAMP, nullable=False),
    Column("last_seen", TIMESTAMP, nullable=False),
)
sensors = Table(
    "sensors",
    tenant_metadata,
    Column("device_id", Text, primary_key=True),
    Column("sensor", Text, primary_key=True),
    Column("name", Text),
    Column("unit", Text),
    Column("labels", JSONB, nullable=False),
    Column("first_seen", TIMESTAMP, nullable=False),
    Column("last_seen", TIMESTAMP, nullable=False),
)
readings = Table(
    "readings",
    tenant_metadata,
    Column("device_id", Text, primary_key=True),
    Column("sensor", Text, primary_key=True),
    Column("ts", TIMESTAMP, primary_key=True),
    Column("value", Float, nullable=False),
    Column("unit", Text),
    Column("received_at", TIMESTAMP, nullable=False),
)
latest_readings = Table(
    "latest_readings",
    tenant_metadata,
    Column("device_id", Text, primary_key=True),
    Column("sensor", Text, primary_key=True),
    Column("ts", TIMESTAMP, nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", Text),
    Column("received_at", TIMESTAMP, nullable=False),
)
rejected_readings = Table(
    "rejected_readings",
    tenant_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("received_at", TIMESTAMP, nullable=False),
    Column("source", Text, nullable=False),
    Column("topic", Text),
    Column("device_id", Text),
    Column("sensor", Text),
    Column("reason", Text, nullable=False),
    Column("payload", Text),
)
threshold_rules = Table(
    "threshold_rules",
    tenant_metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", Text),
    Column("sensor", Text, nullable=False),
    Column("min_value", Float),
    Column("max_value", Float),
    Column("hysteresis", Float, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
)
threshold_states = Table(
    "threshold_states",
    tenant_metadata,
    Column("rule_id", Integer, primary_key=True),
    Column("device_id", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("value", Float),
    Column("ts", TIMESTAMP),
    Column("changed_at", TIMESTAMP),
)

_DIALECT: Final = postgresql.dialect()  # type: ignore[no-untyped-call]


def in_tenant(schema: str) -> dict[str, Any]:
    """Execution options that put these tables in `schema` (a checked tenant schema name) for one statement."""
    return {"schema_translate_map": {None: check_schema(schema)}}


def qualified(table: Table, schema: str) -> str:
    """`"tenant_x".table` for raw SQL text; the schema is checked against the tenant schema pattern first."""
    return f"{quoted(schema)}.{table.name}"


def column_list(table: Table, names: Sequence[str]) -> str:
    """`a, b, c` for raw SQL text; a name the table does not have raises `KeyError`."""
    return ", ".join(table.c[name].name for name in names)


def unnest_arrays(table: Table, names: Sequence[str], *, first: int = 1) -> str:
    """`$1::TEXT[], $2::FLOAT[], ...`: one array parameter per column, typed as the column is."""
    return ", ".join(
        f"${number}::{table.c[name].type.compile(dialect=_DIALECT)}[]" for number, name in enumerate(names, first)
    )
