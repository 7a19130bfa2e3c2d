"""The engine's pool survives connections the server closed, without a round trip per checkout."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from sqlalchemy import text

from mirante.db import create_engine, plain_url
from mirante.settings import DatabaseSettings


async def _backend_pid(engine_url: str, settings: DatabaseSettings, terminate_first: bool) -> tuple[int, int]:
    engine = create_engine(engine_url, settings)
    try:
        async with engine.connect() as connection:
            first = int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0)
        if terminate_first:
            killer = await asyncpg.connect(plain_url(engine_url))
            try:
                assert await killer.fetchval("SELECT pg_terminate_backend($1)", first)
                deadline = time.monotonic() + 10
                while await killer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first):
                    assert time.monotonic() < deadline, "the terminated backend did not go away"
                    await asyncio.sleep(0.02)
            finally:
                await killer.close()
            # The client reads the server's goodbye on its next turns of the event loop.
            await asyncio.sleep(0.2)
        async with engine.connect() as connection:
            second = int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0)
        return first, second
    finally:
        await engine.dispose()


async def test_a_connection_the_server_closed_is_replaced_at_checkout(database_url: str) -> None:
    settings = DatabaseSettings(url=database_url, pool_size=1, max_overflow=0)
    first, second = await _backend_pid(database_url, settings, terminate_first=True)
    assert second != first


async def test_a_live_pooled_connection_is_reused(database_url: str) -> None:
    settings = DatabaseSettings(url=database_url, pool_size=1, max_overflow=0)
    first, second = await _backend_pid(database_url, settings, terminate_first=False)
    assert second == first
