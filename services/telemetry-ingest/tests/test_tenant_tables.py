"""The one description of the tenant tables (`tenancy.tables`) matches what the tenant migrations build, and the
API shapes of threshold rules and states name the columns of that description.

A column added by a tenant migration but not to the description (or the other way round) fails here, so adding
a column stays two changes: the migration and the table's description.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from telemetry_ingest.tenancy.migrator import VERSION_TABLE
from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.tables import tenant_metadata
from telemetry_ingest.thresholds.cache import RULE_FIELDS
from telemetry_ingest.thresholds.repository import STATE_COLUMNS
from telemetry_ingest.thresholds.schemas import ThresholdRuleRead, ThresholdStateRead

TenantFactory = Callable[..., Awaitable[str]]

# What the description states: the tables, their columns (type and nullability) and primary keys. Indexes,
# foreign keys and checks live in the migrations only; no statement is built from them.
COLUMN_DIFFS = {"add_table", "remove_table", "add_column", "remove_column", "modify_type", "modify_nullable"}


def _flat(diffs: list[Any]) -> Iterator[tuple[Any, ...]]:
    for diff in diffs:
        # Column modifications come as a list of tuples per column.
        yield from (diff if isinstance(diff, list) else [diff])


def _description_diff(connection: Connection, schema: str, partitions: set[str]) -> list[tuple[Any, ...]]:
    described = MetaData()
    for table in tenant_metadata.sorted_tables:
        table.to_metadata(described, schema=schema)

    def include_name(name: str | None, kind: str, parents: dict[str, str | None]) -> bool:
        if kind == "schema":
            return name == schema
        return not (kind == "table" and (name == VERSION_TABLE or name in partitions))

    context = MigrationContext.configure(
        connection,
        opts={"include_schemas": True, "include_name": include_name, "compare_type": True},
    )
    return [diff for diff in _flat(compare_metadata(context, described)) if diff[0] in COLUMN_DIFFS]


def _primary_keys(connection: Connection, schema: str) -> dict[str, list[str]]:
    inspector = inspect(connection)
    return {
        name: inspector.get_pk_constraint(name, schema=schema)["constrained_columns"] for name in tenant_metadata.tables
    }


async def test_the_tenant_tables_description_matches_the_migrated_schema(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant())
    # Daily partitions of `readings` are tables of the schema too; they follow their parent.
    partitions = set(
        await db_session.scalars(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relispartition"
            ),
            {"schema": schema},
        )
    )
    connection = await db_session.connection()

    diff = await connection.run_sync(_description_diff, schema, partitions)
    assert diff == [], f"tenancy/tables.py and the tenant migrations differ: {diff}"
    keys = await connection.run_sync(_primary_keys, schema)
    assert keys == {
        name: [column.name for column in table.primary_key] for name, table in tenant_metadata.tables.items()
    }


def test_threshold_shapes_name_the_columns_of_the_description() -> None:
    rules = tenant_metadata.tables["threshold_rules"]
    assert list(ThresholdRuleRead.model_fields) == list(rules.c.keys())
    assert set(RULE_FIELDS) <= set(rules.c.keys())
    assert list(ThresholdStateRead.model_fields) == [column.name for column in STATE_COLUMNS]
