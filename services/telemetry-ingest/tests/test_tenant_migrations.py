"""The central tables match their models; tenant migrations build, upgrade and re-run tenant schemas."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.bus.tables import INBOX, OUTBOX
from mirante.db import create_sessionmaker
from telemetry_ingest.db import Base
from telemetry_ingest.tenancy import migrator, service
from telemetry_ingest.tenancy.migrator import (
    VERSION_TABLE,
    head_revision,
    migrate_tenant_schema,
    tenant_schema_revision,
    upgrade_all_tenants,
    upgrade_tenant_schema,
)
from telemetry_ingest.tenancy.naming import schema_for

TenantFactory = Callable[..., Awaitable[str]]

TENANT_TABLES = {
    "devices",
    "sensors",
    "readings",
    "latest_readings",
    "rejected_readings",
    "threshold_rules",
    "threshold_states",
    VERSION_TABLE,
}

EXTRA_REVISION = '''"""Test revision: one more table.

Revision ID: 9001
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True), schema=schema)


def downgrade(schema: str) -> None:
    op.drop_table("notes", schema=schema)
'''


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def tables_of(session: AsyncSession, schema: str) -> set[str]:
    rows = await session.scalars(
        text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"), {"schema": schema}
    )
    return set(rows)


async def relations_of(session: AsyncSession, schema: str) -> list[tuple[str, int]]:
    """Every relation of the schema with its oid: equal before and after only if nothing was rebuilt."""
    rows = await session.execute(
        text(
            "SELECT c.relname, c.oid::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema ORDER BY c.relname"
        ),
        {"schema": schema},
    )
    return [(name, oid) for name, oid in rows]


def _central_diff(connection: Connection) -> list[Any]:
    def include_name(name: str | None, kind: str, parents: dict[str, str | None]) -> bool:
        if kind == "schema":
            return name == "telemetry_ingest"
        return not (kind == "table" and name in {OUTBOX, INBOX})

    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": include_name,
            "compare_type": True,
            "version_table": VERSION_TABLE,
            "version_table_schema": "telemetry_ingest",
            "target_metadata": Base.metadata,
        },
    )
    return list(compare_metadata(context, Base.metadata))


async def test_central_tables_match_their_models(db_engine: AsyncEngine) -> None:
    assert {"tenants", "device_credentials", "unrouted_messages"} <= {t.name for t in Base.metadata.tables.values()}
    async with db_engine.connect() as connection:
        diff = await connection.run_sync(_central_diff)

    assert diff == [], f"the models and alembic/telemetry_ingest differ: {diff}"


async def test_a_new_tenant_gets_every_table_and_its_own_version_table(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant())

    assert await tables_of(db_session, schema) == TENANT_TABLES
    connection = await db_session.connection()
    assert await tenant_schema_revision(connection, schema) == head_revision() == "0001"
    readings_kind = await db_session.scalar(
        text("SELECT relkind::text FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": f'"{schema}".readings'}
    )
    timescale = await db_session.scalar(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"))
    assert readings_kind == ("r" if timescale else "p"), "plain range partitions without TimescaleDB"
    central = await db_session.scalar(text("SELECT version_num FROM telemetry_ingest.alembic_version"))
    assert central == "0002"
    assert await db_session.scalar(text("SELECT to_regclass('public.alembic_version')")) is None


async def test_readings_rejects_rows_without_a_partition_and_constraints_hold(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant())

    with pytest.raises(Exception, match="no partition"):
        async with db_session.begin_nested():
            await db_session.execute(
                text(f"INSERT INTO \"{schema}\".readings (device_id, sensor, ts, value) VALUES ('d', 's', now(), 1)")
            )
    with pytest.raises(Exception, match="ck_threshold_rules_bounds"):
        async with db_session.begin_nested():
            await db_session.execute(text(f"INSERT INTO \"{schema}\".threshold_rules (sensor) VALUES ('temp')"))
    async with db_session.begin_nested():
        await db_session.execute(
            text(f"INSERT INTO \"{schema}\".threshold_rules (sensor, max_value) VALUES ('temp', 30)")
        )
    assert await db_session.scalar(text(f'SELECT hysteresis FROM "{schema}".threshold_rules')) == 0


async def test_upgrading_again_changes_nothing(db_session: AsyncSession, make_tenant: TenantFactory) -> None:
    schema = schema_for(await make_tenant())
    before = await relations_of(db_session, schema)

    upgrade = await migrate_tenant_schema(await db_session.connection(), schema)
    await upgrade_tenant_schema(await db_session.connection(), schema)

    assert (upgrade.before, upgrade.after, upgrade.changed) == ("0001", "0001", False)
    assert await relations_of(db_session, schema) == before


async def test_upgrade_tenant_schema_creates_a_missing_schema(db_session: AsyncSession) -> None:
    schema = schema_for(unique_slug("bare-"))

    upgrade = await migrate_tenant_schema(await db_session.connection(), schema)

    assert (upgrade.before, upgrade.after) == (None, "0001")
    assert await tables_of(db_session, schema) == TENANT_TABLES


async def test_a_new_revision_reaches_every_tenant(
    db_session: AsyncSession, make_tenant: TenantFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slugs = [await make_tenant(), await make_tenant(unique_slug("with-dash-"))]
    history = tmp_path / "migrations"
    shutil.copytree(migrator.MIGRATIONS_DIR, history, ignore=shutil.ignore_patterns("__pycache__"))
    (history / "versions" / "9001_notes.py").write_text(EXTRA_REVISION.format(down=head_revision()))
    monkeypatch.setattr(migrator, "MIGRATIONS_DIR", history)

    upgraded = await upgrade_all_tenants(await db_session.connection())

    assert head_revision() == "9001"
    for slug in slugs:
        schema = schema_for(slug)
        assert schema in upgraded
        assert "notes" in await tables_of(db_session, schema)
        assert await tenant_schema_revision(await db_session.connection(), schema) == "9001"
    assert upgraded == sorted(upgraded, key=lambda schema: schema.removeprefix("tenant_"))
    again = await migrator.upgrade_tenants(await db_session.connection(), [schema_for(slug) for slug in slugs])
    assert [upgrade.changed for upgrade in again] == [False, False]


async def test_a_failing_revision_leaves_the_tenant_as_it_was(
    db_session: AsyncSession, make_tenant: TenantFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = schema_for(await make_tenant())
    history = tmp_path / "migrations"
    shutil.copytree(migrator.MIGRATIONS_DIR, history, ignore=shutil.ignore_patterns("__pycache__"))
    broken = EXTRA_REVISION.format(down=head_revision()).replace(
        'op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True), schema=schema)',
        'op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True), schema=schema)\n'
        '    op.execute("SELECT no_such_function()")',
    )
    (history / "versions" / "9001_notes.py").write_text(broken)
    monkeypatch.setattr(migrator, "MIGRATIONS_DIR", history)

    with pytest.raises(ProgrammingError, match="no_such_function"):
        async with db_session.begin_nested():
            await upgrade_tenant_schema(await db_session.connection(), schema)

    assert "notes" not in await tables_of(db_session, schema)
    monkeypatch.undo()
    assert await tenant_schema_revision(await db_session.connection(), schema) == "0001"


@pytest.mark.parametrize("schema", ["public", "tenant_", "tenant_Bad", 'tenant_x"; DROP SCHEMA public; --', "x" * 70])
async def test_only_tenant_schema_names_are_migrated(db_session: AsyncSession, schema: str) -> None:
    with pytest.raises(ValueError, match="not a tenant schema name"):
        await upgrade_tenant_schema(await db_session.connection(), schema)


async def test_tenants_created_side_by_side_in_one_process_each_get_their_tables(db_engine: AsyncEngine) -> None:
    """Alembic's `op` serves one migration at a time: concurrent creations must not mix their DDL."""
    slugs = [unique_slug("side-") for _ in range(3)]

    async def create(slug: str) -> None:
        async with create_sessionmaker(db_engine)() as session:
            await session.begin()
            await service.create_tenant(session, slug=slug, name=slug)
            assert await tables_of(session, schema_for(slug)) == TENANT_TABLES
            await session.rollback()

    await asyncio.gather(*(create(slug) for slug in slugs))
