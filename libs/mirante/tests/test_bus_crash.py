"""A consumer killed with SIGKILL mid-batch loses nothing and duplicates nothing.

The killed consumer runs in its own process; a second member of the same group reclaims what it left
pending (XAUTOCLAIM) and the inbox skips what it had already committed. The effect table has no unique
constraint on the event id, so any double processing would show as a second row.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.bus.consumer import StreamConsumer
from mirante.bus.envelope import Event
from mirante.db import create_sessionmaker
from mirante.devstack import StackUrls
from mirante.testing.streams import (
    pending_by_consumer,
    publish_event,
    scratch_bus_schema,
    wait_until,
    wait_until_acknowledged,
)

CONSUMER_SCRIPT = Path(__file__).with_name("bus_consumer_process.py")
EVENT_COUNT = 300


@pytest_asyncio.fixture
async def schema(db_engine: AsyncEngine) -> AsyncIterator[str]:
    async with scratch_bus_schema(db_engine) as name:
        async with db_engine.begin() as connection:
            await connection.execute(
                text(f'CREATE TABLE "{name}".effects (event_id uuid NOT NULL, handled_by text NOT NULL)')
            )
        yield name


@contextmanager
def consumer_process(arguments: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(CONSUMER_SCRIPT), *arguments], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def effect_counts(engine: AsyncEngine, schema: str) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f'SELECT event_id::text, count(*) FROM "{schema}".effects GROUP BY event_id')
        )
        return {str(event_id): int(count) for event_id, count in rows.all()}


async def total_effects(engine: AsyncEngine, schema: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f'SELECT count(*) FROM "{schema}".effects'))).scalar_one())


async def handler_transaction_open(engine: AsyncEngine, schema: str) -> bool:
    async with engine.connect() as connection:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle in transaction' AND query LIKE :effect_insert"
        )
        found = await connection.execute(query, {"effect_insert": f'INSERT INTO "{schema}".effects%'})
        return int(found.scalar_one()) > 0


async def publish_batch(redis: Redis, stream: str, count: int) -> list[str]:
    ids = []
    for number in range(count):
        event = Event(source="mirante/test", type="test.item.created", data={"number": number})
        await publish_event(redis, stream, event)
        ids.append(event.id)
    return ids


def reclaiming_consumer(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], schema: str, stream: str, group: str
) -> StreamConsumer:
    record_effect = text(f'INSERT INTO "{schema}".effects (event_id, handled_by) VALUES (:event_id, :by)')

    async def handler(session: AsyncSession, event: Event) -> None:
        await session.execute(record_effect, {"event_id": event.event_uuid, "by": "survivor"})

    return StreamConsumer(
        redis,
        sessionmaker,
        stream,
        group,
        "survivor",
        handler,
        schema,
        batch_size=50,
        block_ms=100,
        min_idle_ms=300,
        reclaim_interval=0.2,
    )


async def run_until_everything_handled(
    consumer: StreamConsumer, redis: Redis, engine: AsyncEngine, schema: str, stream: str, group: str
) -> None:
    task = asyncio.create_task(consumer.run())
    try:

        async def all_handled() -> bool:
            return len(await effect_counts(engine, schema)) == EVENT_COUNT

        await wait_until(all_handled, within=15, what="every event to have an effect")
        await wait_until_acknowledged(redis, stream, group, within=5)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, timeout=5)


def process_arguments(
    database_url: str, redis_url: str, schema: str, stream: str, group: str, *extra: str
) -> list[str]:
    return [
        "--database-url",
        database_url,
        "--redis-url",
        redis_url,
        "--schema",
        schema,
        "--stream",
        stream,
        "--group",
        group,
        "--consumer",
        "doomed",
        *extra,
    ]


async def test_sigkill_mid_batch_then_reclaim_handles_every_event_exactly_once(
    db_engine: AsyncEngine,
    database_url: str,
    mirante_urls: StackUrls,
    redis_client: Redis,
    schema: str,
    stream: str,
    tmp_path: Path,
) -> None:
    group = f"crash-{uuid.uuid4().hex[:8]}"
    await redis_client.xgroup_create(stream, group, id="$", mkstream=True)
    event_ids = await publish_batch(redis_client, stream, EVENT_COUNT)
    arguments = process_arguments(database_url, mirante_urls.redis_url, schema, stream, group)

    with consumer_process(arguments, tmp_path / "doomed.log") as process:

        async def mid_batch() -> bool:
            assert process.poll() is None, (tmp_path / "doomed.log").read_text()
            # Several entries delivered but not acked, and a handler's transaction open: the kill lands
            # inside a batch and inside a handler, where acking too early would lose the event.
            in_flight = (await pending_by_consumer(redis_client, stream, group)).get("doomed", 0)
            return (
                in_flight >= 5
                and await total_effects(db_engine, schema) >= 60
                and await handler_transaction_open(db_engine, schema)
            )

        await wait_until(mid_batch, within=15, what="the doomed consumer to be mid-batch")
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=5) == -signal.SIGKILL

    handled_before_kill = await total_effects(db_engine, schema)
    left_pending = (await pending_by_consumer(redis_client, stream, group)).get("doomed", 0)
    assert 60 <= handled_before_kill < EVENT_COUNT
    assert left_pending >= 1

    survivor = reclaiming_consumer(redis_client, create_sessionmaker(db_engine), schema, stream, group)
    await run_until_everything_handled(survivor, redis_client, db_engine, schema, stream, group)

    counts = await effect_counts(db_engine, schema)
    assert set(counts) == set(event_ids)
    assert all(count == 1 for count in counts.values()), {k: v for k, v in counts.items() if v != 1}
    assert await total_effects(db_engine, schema) == EVENT_COUNT
    assert survivor.stats.reclaimed >= left_pending
    assert survivor.stats.processed + handled_before_kill == EVENT_COUNT
    assert survivor.stats.failures == 0


async def test_redelivery_after_commit_but_before_ack_is_skipped_by_the_inbox(
    db_engine: AsyncEngine,
    database_url: str,
    mirante_urls: StackUrls,
    redis_client: Redis,
    schema: str,
    stream: str,
    tmp_path: Path,
) -> None:
    group = f"crash-{uuid.uuid4().hex[:8]}"
    await redis_client.xgroup_create(stream, group, id="$", mkstream=True)
    event_ids = await publish_batch(redis_client, stream, EVENT_COUNT)
    batch_size, acked_batches = 20, 2
    arguments = process_arguments(
        database_url,
        mirante_urls.redis_url,
        schema,
        stream,
        group,
        "--batch-size",
        str(batch_size),
        "--handler-sleep-ms",
        "0",
        "--kill-before-ack-of-batch",
        str(acked_batches + 1),
    )

    with consumer_process(arguments, tmp_path / "doomed.log") as process:
        returncode = await asyncio.to_thread(process.wait, 20)
    assert returncode == -signal.SIGKILL, (tmp_path / "doomed.log").read_text()

    # Everything was published before the consumer started, so every read returned a full batch. The third
    # batch's effects are committed, yet its entries are still pending: exactly the redelivery case.
    committed = (acked_batches + 1) * batch_size
    assert await total_effects(db_engine, schema) == committed
    assert (await pending_by_consumer(redis_client, stream, group)).get("doomed", 0) == batch_size

    survivor = reclaiming_consumer(redis_client, create_sessionmaker(db_engine), schema, stream, group)
    await run_until_everything_handled(survivor, redis_client, db_engine, schema, stream, group)

    counts = await effect_counts(db_engine, schema)
    assert set(counts) == set(event_ids)
    assert all(count == 1 for count in counts.values())
    assert survivor.stats.duplicates == batch_size
    assert survivor.stats.processed == EVENT_COUNT - committed
