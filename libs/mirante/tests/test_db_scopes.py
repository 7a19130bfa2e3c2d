"""The engine and transaction scopes of one-shot commands: settings kept, work committed or rolled back,
engine disposed."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from mirante.db import engine_scope, one_transaction
from mirante.settings import DatabaseSettings


async def test_an_engine_scope_keeps_the_pool_settings_and_disposes_of_the_engine(database_url: str) -> None:
    settings = DatabaseSettings(pool_size=2, max_overflow=1, pool_recycle_seconds=60)
    async with engine_scope(database_url, settings) as engine:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
        pool = engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow, pool._recycle) == (2, 1, 60)  # type: ignore[attr-defined]
        assert pool.checkedin() == 1  # type: ignore[attr-defined]
    assert engine.sync_engine.pool.checkedin() == 0  # type: ignore[attr-defined]


async def test_an_unpooled_engine_scope_keeps_no_connection(database_url: str) -> None:
    async with engine_scope(database_url, pooled=False) as engine:
        assert isinstance(engine.sync_engine.pool, NullPool)
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1


async def test_one_transaction_commits_its_work_and_rolls_back_on_error(database_url: str) -> None:
    settings = DatabaseSettings(pool_size=1, max_overflow=0)
    table = "test_one_transaction"
    async with one_transaction(database_url, settings) as session:
        await session.execute(text(f"CREATE TABLE IF NOT EXISTS public.{table} (n int)"))
        await session.execute(text(f"INSERT INTO public.{table} VALUES (1)"))
    with pytest.raises(RuntimeError):
        async with one_transaction(database_url, settings) as session:
            await session.execute(text(f"INSERT INTO public.{table} VALUES (2)"))
            raise RuntimeError("the work failed")
    async with one_transaction(database_url, settings) as session:
        assert list(await session.scalars(text(f"SELECT n FROM public.{table}"))) == [1]
        await session.execute(text(f"DROP TABLE public.{table}"))
