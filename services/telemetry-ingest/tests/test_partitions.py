"""Daily readings partitions: created on demand under a per-tenant lock, cached once committed, dropped by age."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.partitions import (
    MissingReadingsTableError,
    drop_partitions_before,
    ensure_partitions,
    forget_partitions,
    known_partitions,
)

TenantFactory = Callable[..., Awaitable[str]]
DAY = date(2025, 10, 17)


async def partitions_of(connection: AsyncConnection | AsyncSession, schema: str) -> dict[str, str]:
    """Partition name -> its bounds, as PostgreSQL states them."""
    rows = await connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:rel AS regclass)"
        ),
        {"rel": f'"{schema}".readings'},
    )
    return {str(name): str(bound) for name, bound in rows.all()}


async def insert_reading(connection: AsyncConnection | AsyncSession, schema: str, ts: datetime) -> None:
    await connection.execute(
        text(f"INSERT INTO \"{schema}\".readings (device_id, sensor, ts, value) VALUES ('dev', 'temp', :ts, 1.5)"),
        {"ts": ts},
    )


@contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_missing_days_get_a_partition_each_with_utc_day_bounds(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant())
    days = {DAY, DAY + timedelta(days=1), date(2024, 2, 29)}

    created = await ensure_partitions(db_session, schema, days)

    assert created == ["readings_p20240229", "readings_p20251017", "readings_p20251018"]
    bounds = await partitions_of(db_session, schema)
    assert set(bounds) == set(created)
    assert bounds["readings_p20251017"] == ("FOR VALUES FROM ('2025-10-17 00:00:00+00') TO ('2025-10-18 00:00:00+00')")
    for moment in ("2025-10-17T00:00:00+00:00", "2025-10-17T23:59:59.999999+00:00", "2025-10-17T21:30:00-03:00"):
        await insert_reading(db_session, schema, datetime.fromisoformat(moment))
    counts = await db_session.execute(
        text(f'SELECT tableoid::regclass::text, count(*) FROM "{schema}".readings GROUP BY 1')
    )
    assert {name.split(".")[-1]: count for name, count in counts} == {"readings_p20251017": 2, "readings_p20251018": 1}
    assert await ensure_partitions(db_session, schema, days) == [], "nothing left to create"
    assert await ensure_partitions(db_session, schema, set()) == []


async def test_a_day_without_partition_still_refuses_rows(db_session: AsyncSession, make_tenant: TenantFactory) -> None:
    schema = schema_for(await make_tenant())
    await ensure_partitions(db_session, schema, {DAY})

    with pytest.raises(DBAPIError, match="no partition"):
        async with db_session.begin_nested():
            await insert_reading(db_session, schema, datetime(2025, 10, 18, tzinfo=UTC))


async def test_committed_partitions_are_cached_and_then_cost_no_statement(
    db_engine: AsyncEngine, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant(committed=True))
    days = {DAY, DAY + timedelta(days=1)}
    async with db_engine.begin() as connection:
        assert len(await ensure_partitions(connection, schema, days)) == 2
        assert known_partitions(schema) == frozenset(), "not trusted before its transaction commits"
    async with db_engine.begin() as connection:
        assert await ensure_partitions(connection, schema, days) == []
    assert known_partitions(schema) == days

    async with db_engine.begin() as connection:
        with counted_statements(db_engine) as statements:
            assert await ensure_partitions(connection, schema, {DAY}) == []
            assert await ensure_partitions(connection, schema, days) == []

    assert statements == [], "the hot path touches neither the database nor the lock"


async def test_a_partition_created_by_a_rolled_back_transaction_is_created_again(
    db_engine: AsyncEngine, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant(committed=True))
    async with db_engine.connect() as connection:
        transaction = await connection.begin()
        assert await ensure_partitions(connection, schema, {DAY}) == ["readings_p20251017"]
        await transaction.rollback()

    async with db_engine.begin() as connection:
        assert await ensure_partitions(connection, schema, {DAY}) == ["readings_p20251017"]
        await insert_reading(connection, schema, datetime(2025, 10, 17, 12, tzinfo=UTC))
    async with db_engine.connect() as connection:
        assert await connection.scalar(text(f'SELECT count(*) FROM "{schema}".readings')) == 1


async def test_concurrent_writers_create_each_partition_once(
    db_engine: AsyncEngine, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant(committed=True))
    days = {DAY + timedelta(days=offset) for offset in range(3)}

    async def writer(device: str) -> list[str]:
        async with db_engine.begin() as connection:
            created = await ensure_partitions(connection, schema, days)
            for day in days:
                await connection.execute(
                    text(f"INSERT INTO \"{schema}\".readings (device_id, sensor, ts, value) VALUES (:d, 't', :ts, 1)"),
                    {"d": device, "ts": datetime(day.year, day.month, day.day, 6, tzinfo=UTC)},
                )
            return created

    results = await asyncio.gather(*(writer(f"dev-{number}") for number in range(4)))

    assert sorted(name for created in results for name in created) == sorted(
        f"readings_p{day:%Y%m%d}" for day in days
    ), "every partition created exactly once, by one of the writers"
    async with db_engine.connect() as connection:
        assert await connection.scalar(text(f'SELECT count(*) FROM "{schema}".readings')) == 12


async def test_drop_partitions_before_drops_only_older_days_and_forgets_them(
    db_engine: AsyncEngine, make_tenant: TenantFactory
) -> None:
    schema = schema_for(await make_tenant(committed=True))
    days = {DAY - timedelta(days=2), DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)}
    async with db_engine.begin() as connection:
        await ensure_partitions(connection, schema, days)
        await connection.execute(text(f'CREATE TABLE "{schema}".readings_archive (id int)'))
    async with db_engine.begin() as connection:
        await ensure_partitions(connection, schema, days)
    assert known_partitions(schema) == days

    async with db_engine.begin() as connection:
        dropped = await drop_partitions_before(connection, schema, DAY)

    assert dropped == ["readings_p20251015", "readings_p20251016"]
    assert known_partitions(schema) == {DAY, DAY + timedelta(days=1)}
    async with db_engine.connect() as connection:
        assert set(await partitions_of(connection, schema)) == {"readings_p20251017", "readings_p20251018"}
        assert await connection.scalar(text(f"SELECT to_regclass('\"{schema}\".readings_archive') IS NOT NULL"))
    async with db_engine.begin() as connection:
        assert await drop_partitions_before(connection, schema, DAY) == []
        assert await ensure_partitions(connection, schema, {DAY - timedelta(days=1)}) == ["readings_p20251016"]


async def test_forgetting_makes_the_next_call_look_again(db_engine: AsyncEngine, make_tenant: TenantFactory) -> None:
    schema = schema_for(await make_tenant(committed=True))
    for _ in range(2):
        async with db_engine.begin() as connection:
            await ensure_partitions(connection, schema, {DAY})
    assert known_partitions(schema) == {DAY}
    async with db_engine.begin() as connection:
        await connection.execute(text(f'DROP TABLE "{schema}".readings_p20251017'))

    forget_partitions(schema)

    assert known_partitions(schema) == frozenset()
    async with db_engine.begin() as connection:
        assert await ensure_partitions(connection, schema, {DAY}) == ["readings_p20251017"]


async def test_unknown_and_malformed_schemas_are_refused(db_session: AsyncSession) -> None:
    with pytest.raises(MissingReadingsTableError, match="no readings table"):
        await ensure_partitions(db_session, "tenant_nosuchtenant0", {DAY})
    for bad in ("public", 'tenant_x"; DROP TABLE y; --'):
        with pytest.raises(ValueError, match="not a tenant schema name"):
            await ensure_partitions(db_session, bad, {DAY})
        with pytest.raises(ValueError, match="not a tenant schema name"):
            await drop_partitions_before(db_session, bad, DAY)
