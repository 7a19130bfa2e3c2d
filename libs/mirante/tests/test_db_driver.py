"""Statements sent through asyncpg itself: compiled once from `text()`, run on a pooled connection in autocommit
or inside a session's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import BigInteger, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.db import create_engine, create_sessionmaker, engine_of
from mirante.db_driver import DriverStatement, pooled_driver, session_driver
from mirante.settings import DatabaseSettings

TABLE = "public.test_db_driver"

_INSERT = DriverStatement.of(
    text(
        f"""
        INSERT INTO {TABLE} (n, label)
        SELECT n, :label FROM unnest(CAST(:numbers AS bigint[])) AS n
        WHERE n <> ALL(CAST(:skipped AS bigint[])) AND :label IS NOT NULL
        RETURNING n
        """
    ).bindparams(
        bindparam("numbers", type_=ARRAY(BigInteger)),
        bindparam("skipped", type_=ARRAY(BigInteger)),
        bindparam("label", type_=String),
    )
)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, DatabaseSettings(pool_size=1, max_overflow=0))
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"CREATE TABLE IF NOT EXISTS {TABLE} (n bigint, label text)"))
            await connection.execute(text(f"TRUNCATE {TABLE}"))
        yield engine
    finally:
        await engine.dispose()


def test_a_parameter_named_twice_is_one_placeholder_in_the_order_of_first_use() -> None:
    assert _INSERT.names == ("label", "numbers", "skipped")
    assert "$1" in _INSERT.sql and "$4" not in _INSERT.sql and ":label" not in _INSERT.sql
    assert _INSERT.arguments({"numbers": [1], "skipped": [], "label": "x"}) == ["x", [1], []]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"numbers": [1], "label": "x"}, "missing ['skipped'], unknown []"),
        ({"numbers": [1], "skipped": [], "label": "x", "lable": "y"}, "missing [], unknown ['lable']"),
        ({"numbers": [1], "skipped": [], "lable": "x"}, "missing ['label'], unknown ['lable']"),
    ],
)
def test_values_that_do_not_match_the_parameters_are_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        _INSERT.arguments(values)


async def test_a_pooled_driver_connection_commits_each_statement_and_goes_back_to_the_pool(
    engine: AsyncEngine,
) -> None:
    async with pooled_driver(engine) as connection:
        rows = await _INSERT.fetch(connection, {"numbers": [1, 2, 3], "skipped": [2], "label": "pooled"})
        assert sorted(row["n"] for row in rows) == [1, 3]
        assert not connection.is_in_transaction()
    assert engine.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    async with engine.connect() as other:
        assert await other.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE label = 'pooled'")) == 2


async def test_a_failed_statement_leaves_the_pooled_connection_usable(engine: AsyncEngine) -> None:
    with pytest.raises(Exception, match="division by zero"):
        async with pooled_driver(engine) as connection:
            await connection.execute("SELECT 1 / 0")
    async with pooled_driver(engine) as connection:
        assert await connection.fetchval("SELECT 2") == 2


async def test_a_statement_cancelled_midway_does_not_leave_its_connection_busy_in_the_pool(engine: AsyncEngine) -> None:
    async def sleep_long() -> None:
        async with pooled_driver(engine) as connection:
            started.set()
            await connection.execute("SELECT pg_sleep(30)")

    started = asyncio.Event()
    sleeper = asyncio.create_task(sleep_long())
    await started.wait()
    await asyncio.sleep(0.2)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    # The pool holds one connection: the next block gets a usable one at once.
    async with pooled_driver(engine) as connection:
        assert await asyncio.wait_for(connection.fetchval("SELECT 3"), timeout=5) == 3


async def test_a_session_driver_statement_is_part_of_the_session_transaction(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    assert engine_of(sessions) is engine
    async with sessions() as session:
        async with session.begin():
            # The driver is asked before any statement of the session: its transaction must be open all the same.
            await _INSERT.execute(await session_driver(session), {"numbers": [7], "skipped": [], "label": "undone"})
            await session.rollback()
        async with session.begin():
            await _INSERT.execute(await session_driver(session), {"numbers": [8], "skipped": [], "label": "kept"})
    async with engine.connect() as other:
        labels = (await other.execute(text(f"SELECT label FROM {TABLE} WHERE n IN (7, 8)"))).scalars().all()
    assert labels == ["kept"]


def test_engine_of_refuses_a_sessionmaker_without_an_async_engine() -> None:
    with pytest.raises(TypeError, match="not bound to an AsyncEngine"):
        engine_of(create_sessionmaker(None))  # type: ignore[arg-type]
