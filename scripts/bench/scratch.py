"""A throw-away database with the bus tables in a scratch schema, for benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.bus.tables import bus_tables
from mirante.db import create_engine, create_sessionmaker
from mirante.testing.database import create_test_database, drop_test_database


@asynccontextmanager
async def scratch_schema(server_url: str, schema: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    database_url = await create_test_database(server_url, prefix="mirante_bench")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            for table in bus_tables(schema):
                await connection.run_sync(table.create)
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()
        await drop_test_database(server_url, database_url)
