"""Fixtures shared by the bus tests: a scratch schema with the bus tables, a sessionmaker, a unique stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.db import create_sessionmaker
from mirante.testing.streams import delete_streams, scratch_bus_schema, unique_name


@pytest_asyncio.fixture
async def schema(db_engine: AsyncEngine) -> AsyncIterator[str]:
    async with scratch_bus_schema(db_engine) as name:
        yield name


@pytest.fixture
def sessionmaker(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(db_engine)


@pytest_asyncio.fixture
async def stream(redis_client: Redis) -> AsyncIterator[str]:
    name = unique_name("events:bus-test")
    yield name
    await delete_streams(redis_client, name)
