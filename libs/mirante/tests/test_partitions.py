"""Day partitions against the real PostgreSQL: names, UTC bounds, creation under a lock, listing, dropping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.partitions import (
    create_day_partition,
    day_bounds,
    day_partitions,
    drop_day_partitions_before,
    partition_day,
    partition_name,
)

PARENT = "events"


@pytest_asyncio.fixture
async def schema(db_engine: AsyncEngine) -> AsyncIterator[str]:
    """A scratch schema (its name needs quoting) holding `events`, partitioned by range on a timestamptz."""
    name = f"scratch-partitions-{uuid.uuid4().hex[:12]}"
    async with db_engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{name}"'))
        await conn.execute(
            text(f'CREATE TABLE "{name}".{PARENT} (at timestamptz NOT NULL, n int) PARTITION BY RANGE (at)')
        )
    try:
        yield name
    finally:
        async with db_engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.mark.parametrize("day", [date(2024, 1, 1), date(2024, 2, 29), date(1999, 12, 31), date(2100, 6, 15)])
def test_a_partition_name_round_trips_to_its_day(day: date) -> None:
    name = partition_name(PARENT, day)
    assert name == f"events_p{day:%Y%m%d}"
    assert partition_day(PARENT, name) == day


@pytest.mark.parametrize(
    "name",
    [
        "events_default",
        "events_p2024010",
        "events_p202401011",
        "events_p20241301",
        "events_p20230229",
        # Full-width digits: str.isdigit takes them, a partition name never holds them.
        "events_p\uff12\uff10\uff12\uff14\uff10\uff11\uff10\uff11",
        "events_x_p20240101",
        "readings_p20240101",
        "events20240101",
    ],
)
def test_other_names_have_no_day(name: str) -> None:
    assert partition_day(PARENT, name) is None


def test_a_parent_too_long_for_a_day_partition_name_is_refused() -> None:
    assert partition_name("t" * 53, date(2024, 1, 1)) == "t" * 53 + "_p20240101"
    with pytest.raises(ValueError, match="too long"):
        partition_name("t" * 54, date(2024, 1, 1))


def test_day_bounds_are_utc_midnights() -> None:
    start, end = day_bounds(date(2024, 3, 31))
    assert (start, end) == (datetime(2024, 3, 31, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
    assert start.utcoffset() == end.utcoffset() == timedelta(0)


async def test_a_partition_holds_its_utc_day_whatever_the_session_time_zone(
    db_engine: AsyncEngine, schema: str
) -> None:
    async with db_engine.begin() as conn:
        await conn.execute(text("SET LOCAL TIME ZONE 'America/Sao_Paulo'"))
        for day in (date(2024, 3, 10), date(2024, 3, 11)):
            assert await create_day_partition(conn, schema, PARENT, day) == partition_name(PARENT, day)
        # 23:30 in Sao Paulo on the 10th is 02:30 UTC on the 11th; midnight UTC is 21:00 the day before there.
        await conn.execute(
            text(
                f'INSERT INTO "{schema}".{PARENT} VALUES '
                "('2024-03-10T23:30:00-03:00', 1), ('2024-03-10T21:00:00-03:00', 2), ('2024-03-10T20:59:59-03:00', 3)"
            )
        )
        placed = await conn.execute(text(f'SELECT tableoid::regclass::text, n FROM "{schema}".{PARENT} ORDER BY n'))
        assert [(where.split(".")[-1], n) for where, n in placed] == [
            ("events_p20240311", 1),
            ("events_p20240311", 2),
            ("events_p20240310", 3),
        ]


async def test_creating_a_day_twice_under_the_lock_leaves_one_partition(db_engine: AsyncEngine, schema: str) -> None:
    day = date(2024, 5, 1)

    async def create() -> str:
        async with db_engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": schema})
            first = await create_day_partition(conn, schema, PARENT, day)
            assert await create_day_partition(conn, schema, PARENT, day) == first
            return first

    names = await asyncio.gather(create(), create(), create())
    assert names == [partition_name(PARENT, day)] * 3
    async with db_engine.connect() as conn:
        assert await day_partitions(conn, schema, PARENT) == {day: "events_p20240501"}


async def test_listing_keeps_only_the_day_partitions_of_the_parent(db_engine: AsyncEngine, schema: str) -> None:
    async with db_engine.begin() as conn:
        await conn.execute(text(f'CREATE TABLE "{schema}".events_default PARTITION OF "{schema}".{PARENT} DEFAULT'))
        await conn.execute(text(f'CREATE TABLE "{schema}".other (at timestamptz NOT NULL) PARTITION BY RANGE (at)'))
        await create_day_partition(conn, schema, "other", date(2024, 1, 1))
        for day in (date(2024, 1, 3), date(2024, 1, 1), date(2024, 1, 2)):
            await create_day_partition(conn, schema, PARENT, day)
        found = await day_partitions(conn, schema, PARENT)
    assert list(found.items()) == [
        (date(2024, 1, 1), "events_p20240101"),
        (date(2024, 1, 2), "events_p20240102"),
        (date(2024, 1, 3), "events_p20240103"),
    ]


async def test_dropping_before_a_cutoff_keeps_the_cutoff_day_and_the_default(
    db_engine: AsyncEngine, schema: str
) -> None:
    cutoff = date(2024, 1, 3)
    async with db_engine.begin() as conn:
        await conn.execute(text(f'CREATE TABLE "{schema}".events_default PARTITION OF "{schema}".{PARENT} DEFAULT'))
        for offset in range(-2, 2):
            await create_day_partition(conn, schema, PARENT, cutoff + timedelta(days=offset))
        await conn.execute(
            text(f"INSERT INTO \"{schema}\".{PARENT} VALUES ('2024-01-03T00:00:00Z', 1), ('2024-01-02T23:59:59Z', 2)")
        )
        dropped = await drop_day_partitions_before(conn, schema, PARENT, cutoff)
        assert list(dropped.items()) == [
            (date(2024, 1, 1), "events_p20240101"),
            (date(2024, 1, 2), "events_p20240102"),
        ]
        assert list(await day_partitions(conn, schema, PARENT)) == [date(2024, 1, 3), date(2024, 1, 4)]
        assert list(await conn.scalars(text(f'SELECT n FROM "{schema}".{PARENT}'))) == [1]
        children = await conn.scalars(
            text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = CAST(:parent AS regclass)"),
            {"parent": f'"{schema}".{PARENT}'},
        )
        assert sorted(name.split(".")[-1] for name in children) == [
            "events_default",
            "events_p20240103",
            "events_p20240104",
        ]
        assert await drop_day_partitions_before(conn, schema, PARENT, cutoff) == {}
