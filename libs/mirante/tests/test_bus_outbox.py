"""Producers: `emit` writes to the outbox in the caller's transaction; the relay publishes each row once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.bus.envelope import Event
from mirante.bus.outbox import emit
from mirante.bus.relay import OutboxRelay, unpublished_row_query
from mirante.bus.tables import outbox_table
from mirante.testing.plans import Scan, plan_of, rolled_back, scans_of
from mirante.testing.streams import (
    read_events,
    read_records,
    wait_for_stream_length,
)


def make_events(count: int, kind: str = "test.item.created") -> list[Event]:
    return [Event(source="mirante/test", type=kind, subject=f"item/{n}", data={"n": n}) for n in range(count)]


async def emit_committed(maker: async_sessionmaker[AsyncSession], schema: str, events: list[Event]) -> None:
    async with maker() as session, session.begin():
        for event in events:
            await emit(session, schema, event)


async def unpublished_count(sessionmaker: async_sessionmaker[AsyncSession], schema: str) -> int:
    outbox = outbox_table(schema)
    async with sessionmaker() as session:
        query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def outbox_count(sessionmaker: async_sessionmaker[AsyncSession], schema: str) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(outbox_table(schema)))).scalar_one())


def relay_for(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis: Redis, stream: str, batch_size: int = 100
) -> OutboxRelay:
    return OutboxRelay(
        sessionmaker, schema=schema, redis=redis, stream=stream, batch_size=batch_size, poll_interval=0.05
    )


async def test_emit_then_relay_publishes_in_order_and_marks_rows(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    first, second = make_events(5), make_events(3, "test.item.updated")
    await emit_committed(sessionmaker, schema, first)
    await emit_committed(sessionmaker, schema, second)
    relay = relay_for(sessionmaker, schema, redis_client, stream)

    assert await relay.publish_batch() == 8
    assert await relay.publish_batch() == 0

    assert await read_events(redis_client, stream) == first + second
    assert await unpublished_count(sessionmaker, schema) == 0
    assert await outbox_count(sessionmaker, schema) == 8
    assert relay.stats.published == 8
    records = await read_records(redis_client, stream)
    assert [record.fields["id"] for record in records] == [event.id for event in first + second]
    assert [record.fields["type"] for record in records] == [event.type for event in first + second]


async def test_emit_writes_the_full_envelope_to_the_outbox_row(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str
) -> None:
    event = Event(source="mirante/test", type="test.item.created", subject="item/1", tenant="acme", data={"a": 1})
    await emit_committed(sessionmaker, schema, [event])

    outbox = outbox_table(schema)
    async with sessionmaker() as session:
        row = (await session.execute(select(outbox))).one()
    assert row.id == event.event_uuid
    assert (row.type, row.subject, row.tenant) == ("test.item.created", "item/1", "acme")
    assert Event.from_envelope(row.envelope) == event
    assert row.published_at is None


async def test_batches_follow_creation_order(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    events = make_events(25)
    await emit_committed(sessionmaker, schema, events)
    relay = relay_for(sessionmaker, schema, redis_client, stream, batch_size=10)

    assert [await relay.publish_batch() for _ in range(4)] == [10, 10, 5, 0]
    assert await read_events(redis_client, stream) == events


async def test_emit_does_not_commit_and_rolled_back_events_never_appear(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    relay = relay_for(sessionmaker, schema, redis_client, stream)
    kept, dropped = make_events(1)[0], make_events(2, "test.item.dropped")

    async with sessionmaker() as session:
        async with session.begin():
            await emit(session, schema, kept)
            assert await outbox_count(sessionmaker, schema) == 0, "visible before the caller committed"
        async with session.begin():
            for event in dropped:
                await emit(session, schema, event)
            await session.rollback()

    assert await relay.publish_batch() == 1
    assert await relay.publish_batch() == 0
    assert await read_events(redis_client, stream) == [kept]
    assert await outbox_count(sessionmaker, schema) == 1


async def test_two_relays_publish_every_row_exactly_once(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    events = make_events(400)
    await emit_committed(sessionmaker, schema, events)
    relays = [relay_for(sessionmaker, schema, redis_client, stream, batch_size=10) for _ in range(2)]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await wait_for_stream_length(redis_client, stream, len(events), within=15)
        await asyncio.sleep(0.2)
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)

    published_ids = [record.fields["id"] for record in await read_records(redis_client, stream)]
    assert len(published_ids) == len(events)
    assert set(published_ids) == {event.id for event in events}
    assert all(relay.stats.published > 0 for relay in relays), "both relays should have taken rows"
    assert sum(relay.stats.published for relay in relays) == len(events)
    assert await unpublished_count(sessionmaker, schema) == 0


async def test_running_relay_publishes_new_commits_and_wake_skips_the_poll_wait(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    relay = OutboxRelay(sessionmaker, schema=schema, redis=redis_client, stream=stream, poll_interval=30)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.1)
        events = make_events(3)
        await emit_committed(sessionmaker, schema, events)
        relay.wake()
        await wait_for_stream_length(redis_client, stream, 3, within=2)
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=5)

    assert await read_events(redis_client, stream) == events


async def test_after_a_part_batch_the_relay_lingers_so_a_trickle_of_commits_is_published_together(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    relay = OutboxRelay(sessionmaker, schema=schema, redis=redis_client, stream=stream, poll_interval=30, linger=1.0)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.1)
        first = make_events(1)
        await emit_committed(sessionmaker, schema, first)
        relay.wake()
        await wait_for_stream_length(redis_client, stream, 1, within=2)
        trickle = make_events(3, "test.item.updated")
        for event in trickle:
            await emit_committed(sessionmaker, schema, [event])
            relay.wake()
        # The linger, unlike the idle poll, is not cut short by a wake: the three commits wait for one batch.
        await asyncio.sleep(0.2)
        assert relay.stats.batches == 1
        await wait_for_stream_length(redis_client, stream, 4, within=5)
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=5)

    assert await read_events(redis_client, stream) == first + trickle
    assert relay.stats.batches == 2


@pytest.mark.parametrize("analyzed_when", ["all unpublished", "empty"])
async def test_an_idle_relay_looks_through_the_index_of_unpublished_rows_whatever_the_statistics(
    db_engine: AsyncEngine, schema: str, analyzed_when: str
) -> None:
    # The day's published rows stay in the outbox; statistics taken during a burst (or of an empty table) must not
    # make the relay's look read them all, four times a second.
    burst = (
        f"INSERT INTO {schema}.outbox (id, type, envelope) "
        "SELECT gen_random_uuid(), 'test.item.created', '{}' FROM generate_series(1, 5000)"
    )
    async with rolled_back(db_engine) as connection:
        if analyzed_when == "all unpublished":
            await connection.execute(text(burst))
        await connection.execute(text(f"ANALYZE {schema}.outbox"))
        if analyzed_when == "empty":
            await connection.execute(text(burst))
        await connection.execute(text(f"UPDATE {schema}.outbox SET published_at = now()"))
        plan = await plan_of(connection, unpublished_row_query(schema))
    assert scans_of(plan, "outbox") == [Scan("ix_outbox_unpublished", None)]


async def test_a_relay_that_finds_nothing_to_publish_leaves_rows_other_relays_hold(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    events = make_events(2)
    await emit_committed(sessionmaker, schema, events)
    relay = relay_for(sessionmaker, schema, redis_client, stream)
    outbox = outbox_table(schema)
    async with sessionmaker() as holder, holder.begin():
        await holder.execute(select(outbox.c.id).with_for_update())
        assert await relay.publish_batch() == 0
    assert await relay.publish_batch() == 2
    assert await relay.publish_batch() == 0
    assert await read_events(redis_client, stream) == events


async def test_failed_publish_rolls_back_and_the_rows_are_published_later(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    events = make_events(3)
    await emit_committed(sessionmaker, schema, events)
    relay = relay_for(sessionmaker, schema, redis_client, stream)
    await redis_client.set(stream, "not a stream")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await relay.publish_batch()
    assert await unpublished_count(sessionmaker, schema) == 3

    await redis_client.delete(stream)
    assert await relay.publish_batch() == 3
    assert await read_events(redis_client, stream) == events


async def test_cleanup_deletes_only_rows_published_longer_ago_than_the_retention(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    old, recent = make_events(2), make_events(1)
    await emit_committed(sessionmaker, schema, old + recent)
    relay = relay_for(sessionmaker, schema, redis_client, stream)
    assert await relay.publish_batch() == 3
    unpublished_but_old = make_events(1, "test.item.waiting")
    await emit_committed(sessionmaker, schema, unpublished_but_old)

    outbox = outbox_table(schema)
    long_ago = func.now() - timedelta(hours=25)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(outbox).where(outbox.c.id.in_([event.event_uuid for event in old])).values(published_at=long_ago)
        )
        await session.execute(
            update(outbox).where(outbox.c.id == unpublished_but_old[0].event_uuid).values(created_at=long_ago)
        )

    assert await relay.delete_published() == 2
    assert await relay.delete_published() == 0
    async with sessionmaker() as session:
        remaining = set((await session.execute(select(outbox.c.id))).scalars())
    assert remaining == {recent[0].event_uuid, unpublished_but_old[0].event_uuid}
    assert await relay.delete_published(older_than=timedelta(0)) == 1
    assert relay.stats.cleaned == 3


async def test_relay_rejects_bad_configuration(
    sessionmaker: async_sessionmaker[AsyncSession], redis_client: Redis
) -> None:
    with pytest.raises(ValueError, match="identifier"):
        OutboxRelay(sessionmaker, schema="Bad-Schema", redis=redis_client, stream="events:x")
    with pytest.raises(ValueError, match="batch_size"):
        OutboxRelay(sessionmaker, schema="ok_schema", redis=redis_client, stream="events:x", batch_size=0)
    with pytest.raises(ValueError, match="stream"):
        OutboxRelay(sessionmaker, schema="ok_schema", redis=redis_client, stream="")
    with pytest.raises(ValueError, match="linger"):
        OutboxRelay(sessionmaker, schema="ok_schema", redis=redis_client, stream="events:x", linger=-1)
