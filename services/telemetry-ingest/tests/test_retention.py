"""Retention: partitions of days older than each tenant's retention are dropped, recent ones kept; a tenant that
cannot be swept does not stop the others; the service's worker and `telemetry-ingest retention run` do it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.db import create_sessionmaker
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory
from telemetry_ingest.cli import main
from telemetry_ingest.config import Settings
from telemetry_ingest.main import create_app
from telemetry_ingest.retention.sweeper import (
    SessionScope,
    UnknownTenantError,
    retention_cutoff,
    run_retention,
    transaction_scope,
)
from telemetry_ingest.tenancy.naming import partition_name, schema_for
from telemetry_ingest.tenancy.partitions import ensure_partitions

TenantFactory = Callable[..., Awaitable[str]]

NOW = datetime(2026, 6, 15, 10, 30, tzinfo=UTC)
TODAY = NOW.date()


def days_ago(days: int, base: date = TODAY) -> date:
    return base - timedelta(days=days)


def in_session(session: AsyncSession) -> SessionScope:
    """A scope inside the test's transaction (a savepoint per block), rolled back with the test."""

    @asynccontextmanager
    async def scope() -> AsyncIterator[AsyncSession]:
        async with session.begin_nested():
            yield session

    return scope


async def store_readings(session: AsyncSession, slug: str, days: list[date]) -> None:
    """One reading at noon of each day (creating the day's partition) and one rejected reading received then."""
    schema = schema_for(slug)
    await ensure_partitions(session, schema, set(days))
    for day in days:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        await session.execute(
            text(f"INSERT INTO \"{schema}\".readings (device_id, sensor, ts, value) VALUES ('d', 't', :ts, 1)"),
            {"ts": noon},
        )
        await session.execute(
            text(
                f"INSERT INTO \"{schema}\".rejected_readings (received_at, source, reason) VALUES (:ts, 'mqtt', 'test')"
            ),
            {"ts": noon},
        )


async def partitions(session: AsyncSession | AsyncEngine, slug: str) -> list[str]:
    query = text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = CAST(:rel AS regclass) ORDER BY 1"
    )
    params = {"rel": f'"{schema_for(slug)}".readings'}
    if isinstance(session, AsyncEngine):
        async with session.connect() as connection:
            return list((await connection.scalars(query, params)).all())
    return list((await session.scalars(query, params)).all())


async def rejected_days(session: AsyncSession, slug: str) -> list[date]:
    rows = await session.scalars(
        text(f'SELECT received_at FROM "{schema_for(slug)}".rejected_readings ORDER BY received_at')
    )
    return [received.date() for received in rows]


def names(days: list[date]) -> list[str]:
    return sorted(partition_name(day) for day in days)


def test_cutoff_keeps_exactly_the_retention() -> None:
    assert retention_cutoff(NOW, 30) == date(2026, 5, 16)
    assert retention_cutoff(datetime(2026, 6, 15, 0, 0, tzinfo=UTC), 1) == date(2026, 6, 14)
    # Days are UTC days: 23:30 on the 14th in São Paulo is already the 15th in UTC.
    evening = datetime(2026, 6, 14, 23, 30, tzinfo=ZoneInfo("America/Sao_Paulo"))
    assert retention_cutoff(evening, 1) == date(2026, 6, 14)


async def test_old_partitions_are_dropped_and_recent_ones_kept(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    slug = await make_tenant(retention_days=30)
    old, kept = [days_ago(400), days_ago(40), days_ago(31)], [days_ago(30), days_ago(1), TODAY]
    await store_readings(db_session, slug, old + kept)

    [result] = await run_retention(in_session(db_session), now=NOW, slugs=[slug])

    assert result.error is None
    assert (result.slug, result.retention_days, result.cutoff) == (slug, 30, days_ago(30))
    assert result.dropped_partitions == names(old)
    assert result.deleted_rejected == 3
    assert await partitions(db_session, slug) == names(kept)
    assert await rejected_days(db_session, slug) == kept
    count = await db_session.scalar(text(f'SELECT count(*) FROM "{schema_for(slug)}".readings'))
    assert count == len(kept)

    # A second sweep finds nothing more to do.
    [again] = await run_retention(in_session(db_session), now=NOW, slugs=[slug])
    assert (again.dropped_partitions, again.deleted_rejected, again.error) == ([], 0, None)


async def test_each_tenant_keeps_its_own_retention(db_session: AsyncSession, make_tenant: TenantFactory) -> None:
    short = await make_tenant(retention_days=7)
    long = await make_tenant(retention_days=90)
    days = [days_ago(100), days_ago(10), days_ago(2)]
    for slug in (short, long):
        await store_readings(db_session, slug, days)

    results = await run_retention(in_session(db_session), now=NOW, slugs=[short, long])

    by_slug = {result.slug: result for result in results}
    assert by_slug[short].dropped_partitions == names(days[:2])
    assert by_slug[long].dropped_partitions == names(days[:1])
    assert await partitions(db_session, short) == names(days[2:])
    assert await partitions(db_session, long) == names(days[1:])


async def test_unknown_tenants_are_refused_before_anything_is_dropped(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    slug = await make_tenant(retention_days=7)
    await store_readings(db_session, slug, [days_ago(30)])
    with pytest.raises(UnknownTenantError, match="no-such-tenant"):
        await run_retention(in_session(db_session), now=NOW, slugs=[slug, "no-such-tenant"])
    assert await partitions(db_session, slug) == names([days_ago(30)])


async def test_a_tenant_that_cannot_be_swept_does_not_stop_the_others(
    db_engine: AsyncEngine, make_tenant: TenantFactory
) -> None:
    busy = await make_tenant(retention_days=7, committed=True)
    free = await make_tenant(retention_days=7, committed=True)
    sessionmaker = create_sessionmaker(db_engine)
    old = days_ago(30, datetime.now(UTC).date())
    async with sessionmaker() as session, session.begin():
        for slug in (busy, free):
            await store_readings(session, slug, [old])
    scope = transaction_scope(sessionmaker)

    # A long query holds the busy tenant's partition: the sweep gives up on it after the lock timeout.
    async with db_engine.connect() as reader:
        await reader.execute(text(f'LOCK TABLE "{schema_for(busy)}".{partition_name(old)} IN ACCESS SHARE MODE'))
        results = await run_retention(scope, slugs=[busy, free], lock_timeout_seconds=0.2)
        await reader.rollback()

    by_slug = {result.slug: result for result in results}
    assert "lock" in (by_slug[busy].error or "")
    assert by_slug[busy].dropped_partitions == []
    assert by_slug[free].error is None and by_slug[free].dropped_partitions == names([old])
    assert await partitions(db_engine, busy) == names([old])
    assert await partitions(db_engine, free) == []

    [retry] = await run_retention(scope, slugs=[busy], lock_timeout_seconds=0.2)
    assert retry.error is None and retry.dropped_partitions == names([old])
    assert await partitions(db_engine, busy) == []


async def test_the_service_sweeps_in_the_background(
    make_client: ClientFactory, infra_settings: InfraSettings, db_engine: AsyncEngine, make_tenant: TenantFactory
) -> None:
    slug = await make_tenant(retention_days=3, committed=True)
    today = datetime.now(UTC).date()
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await store_readings(session, slug, [days_ago(10, today), today])

    settings = Settings(infra=infra_settings, retention_initial_delay_seconds=0, mqtt_ingest_enabled=False)
    client = await make_client(create_app(settings))
    counted = f'telemetry_ingest_retention_partitions_dropped_total{{tenant="{slug}"}} 1.0'
    metrics = ""
    async with asyncio.timeout(60):  # a guard against a hang: the first sweep starts with the app
        while counted not in metrics:
            await asyncio.sleep(0.05)
            metrics = (await client.get("/metrics")).text
    assert await partitions(db_engine, slug) == names([today])
    assert "telemetry_ingest_retention_last_run_timestamp_seconds" in metrics


async def test_retention_run_command(
    db_engine: AsyncEngine,
    database_url: str,
    make_tenant: TenantFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    slug = await make_tenant(retention_days=5, committed=True)
    today = datetime.now(UTC).date()
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await store_readings(session, slug, [days_ago(6, today), days_ago(5, today)])
    monkeypatch.setenv("MIRANTE_DATABASE_URL", database_url)

    assert await asyncio.to_thread(main, ["retention", "run", "--tenant", slug]) == 0
    output = capsys.readouterr().out
    assert (
        f"{slug}: keeps 5 days (from {days_ago(5, today).isoformat()}): dropped {partition_name(days_ago(6, today))}"
        in (output)
    )
    assert "1 tenant(s) swept, 1 partition(s) dropped, 0 failed" in output
    assert await partitions(db_engine, slug) == names([days_ago(5, today)])

    assert await asyncio.to_thread(main, ["retention", "run", "--tenant", "no-such-tenant"]) == 2
    assert "no tenant 'no-such-tenant'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        await asyncio.to_thread(main, ["retention", "run", "--tenant", "Bad Slug"])
    assert exited.value.code == 2
