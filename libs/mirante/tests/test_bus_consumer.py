"""Stream consumers: inbox dedupe, ack after commit, retries, dead letters, own pending first, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import Column, Integer, MetaData, Table, Uuid, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import registry

from mirante.bus import BatchHandler, Outcome, StreamConsumer, delete_old_inbox_rows
from mirante.bus.envelope import Event
from mirante.bus.tables import inbox_table
from mirante.devstack import StackUrls
from mirante.testing.streams import (
    StreamRecord,
    delete_streams,
    pending_count,
    pending_entry_ids,
    publish_event,
    read_records,
    scratch_bus_schema,
    unique_name,
    wait_for_stream_length,
    wait_until,
    wait_until_acknowledged,
)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]


class Streams:
    """Unique stream and group names for one test; deleted afterwards."""

    def __init__(self) -> None:
        self.events = unique_name("events:consumer-test")
        self.other = unique_name("events:consumer-test-other")
        self.dead = unique_name("events:dead-test")
        self.group = f"group-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture
async def streams(redis_client: Redis) -> AsyncIterator[Streams]:
    names = Streams()
    yield names
    await delete_streams(redis_client, names.events, names.other, names.dead)


@pytest_asyncio.fixture
async def schema(db_engine: AsyncEngine) -> AsyncIterator[str]:
    async with scratch_bus_schema(db_engine) as name:
        async with db_engine.begin() as connection:
            await connection.execute(text(f'CREATE TABLE "{name}".effects (event_id uuid NOT NULL)'))
        yield name


def recording_handler(schema: str) -> Handler:
    record = text(f'INSERT INTO "{schema}".effects (event_id) VALUES (:event_id)')

    async def handler(session: AsyncSession, event: Event) -> None:
        await session.execute(record, {"event_id": event.event_uuid})

    return handler


async def effect_count(engine: AsyncEngine, schema: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f'SELECT count(*) FROM "{schema}".effects'))).scalar_one())


async def inbox_count(engine: AsyncEngine, schema: str) -> int:
    async with engine.connect() as connection:
        query = select(func.count()).select_from(inbox_table(schema))
        return int((await connection.execute(query)).scalar_one())


def new_event(number: int = 0) -> Event:
    return Event(source="mirante/test", type="test.item.created", data={"n": number})


def make_consumer(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    streams: Streams,
    handler: Handler,
    *,
    stream_names: list[str] | None = None,
    name: str = "worker-1",
    **options: Any,
) -> StreamConsumer:
    settings: dict[str, Any] = {
        "block_ms": 50,
        "min_idle_ms": 100,
        "reclaim_interval": 0.05,
        "dead_letter_stream": streams.dead,
        **options,
    }
    names = [streams.events] if stream_names is None else stream_names
    return StreamConsumer(redis, sessionmaker, names, streams.group, name, handler, schema, **settings)


class Running:
    """Runs a consumer in the background for the body of an `async with`; stops it at the end."""

    def __init__(self, consumer: StreamConsumer) -> None:
        self.consumer = consumer
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StreamConsumer:
        await self.consumer.ensure_groups()
        self.task = asyncio.create_task(self.consumer.run())
        return self.consumer

    async def __aexit__(self, *exc_info: object) -> None:
        self.consumer.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=5)


async def test_events_are_handled_once_committed_and_acknowledged(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    seen: list[Event] = []
    record = recording_handler(schema)

    async def handler(session: AsyncSession, event: Event) -> None:
        seen.append(event)
        await record(session, event)

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, handler)
    async with Running(consumer):
        events = [new_event(n) for n in range(5)]
        for event in events:
            await publish_event(redis_client, streams.events, event)

        async def all_handled() -> bool:
            return consumer.stats.processed == 5

        await wait_until(all_handled, what="five processed events")
        await wait_until_acknowledged(redis_client, streams.events, streams.group)

    assert seen == events
    assert await effect_count(db_engine, schema) == 5
    assert await inbox_count(db_engine, schema) == 5
    assert consumer.stats.duplicates == consumer.stats.failures == 0


async def test_same_event_published_twice_has_one_effect(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    consumer = make_consumer(redis_client, sessionmaker, schema, streams, recording_handler(schema))
    async with Running(consumer):
        event = new_event()
        await publish_event(redis_client, streams.events, event)
        await publish_event(redis_client, streams.events, event)

        async def both_seen() -> bool:
            return consumer.stats.processed + consumer.stats.duplicates == 2

        await wait_until(both_seen, what="both copies to be handled")
        await wait_until_acknowledged(redis_client, streams.events, streams.group)

    assert (consumer.stats.processed, consumer.stats.duplicates) == (1, 1)
    assert await effect_count(db_engine, schema) == 1


async def test_a_new_group_starts_at_the_end_unless_asked_to_start_at_the_beginning(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    before = new_event(1)
    await publish_event(redis_client, streams.events, before)
    from_now: list[Event] = []
    from_start: list[Event] = []

    async def collect_into(target: list[Event], session: AsyncSession, event: Event) -> None:
        target.append(event)

    late = make_consumer(
        redis_client, sessionmaker, schema, streams, lambda s, e: collect_into(from_now, s, e), name="late"
    )
    async with Running(late):
        after = new_event(2)
        await publish_event(redis_client, streams.events, after)

        async def after_seen() -> bool:
            return late.stats.processed == 1

        await wait_until(after_seen, what="the event published after the group was created")

    streams.group = f"replay-{uuid.uuid4().hex[:8]}"
    replay = make_consumer(
        redis_client,
        sessionmaker,
        schema,
        streams,
        lambda s, e: collect_into(from_start, s, e),
        start_from="0",
        name="replayer",
    )
    async with Running(replay):

        async def everything_seen() -> bool:
            return replay.stats.processed == 2

        await wait_until(everything_seen, what="the replaying group to read the whole stream")

    assert from_now == [after]
    assert from_start == [before, after]


async def test_failing_handler_is_retried_then_dead_lettered_with_the_reason(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    attempts: list[str] = []
    record = recording_handler(schema)

    async def always_fails(session: AsyncSession, event: Event) -> None:
        attempts.append(event.id)
        await record(session, event)
        raise RuntimeError(f"boom #{len(attempts)}")

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, always_fails, max_deliveries=3)
    async with Running(consumer):
        event = new_event()
        entry_id = await publish_event(redis_client, streams.events, event)
        await wait_for_stream_length(redis_client, streams.dead, 1, within=5)
        await wait_until_acknowledged(redis_client, streams.events, streams.group)

    assert attempts == [event.id] * 3
    assert consumer.stats.failures == 3
    assert consumer.stats.dead_lettered == 1
    assert consumer.stats.reclaimed >= 3
    assert await effect_count(db_engine, schema) == 0, "each failed attempt must roll back"
    assert await inbox_count(db_engine, schema) == 0
    [letter] = await read_records(redis_client, streams.dead)
    assert letter.fields["reason"] == "max_deliveries_exceeded"
    assert letter.fields["detail"] == "delivered 4 times; the limit is 3"
    assert letter.fields["last_error"] == "RuntimeError: boom #3"
    assert letter.fields["stream"] == streams.events
    assert letter.fields["entry_id"] == entry_id
    assert letter.fields["group"] == streams.group
    assert letter.fields["event_id"] == event.id
    assert Event.from_fields(original_fields(letter)) == event


async def test_handler_that_fails_once_succeeds_on_redelivery(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    record = recording_handler(schema)
    calls = 0

    async def flaky(session: AsyncSession, event: Event) -> None:
        nonlocal calls
        calls += 1
        await record(session, event)
        if calls == 1:
            raise ConnectionError("downstream unavailable")

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, flaky)
    async with Running(consumer):
        await publish_event(redis_client, streams.events, new_event())

        async def processed() -> bool:
            return consumer.stats.processed == 1

        await wait_until(processed, what="the retry to succeed")
        await wait_until_acknowledged(redis_client, streams.events, streams.group)

    assert (calls, consumer.stats.failures, consumer.stats.dead_lettered) == (2, 1, 0)
    assert await effect_count(db_engine, schema) == 1


async def publish_before_reading(redis: Redis, consumer: StreamConsumer, events: list[Event]) -> None:
    """Publish `events` to a group that exists already, so that one read returns them as one batch."""
    await consumer.ensure_groups()
    for event in events:
        await publish_event(redis, consumer.streams[0], event)


async def inbox_times(engine: AsyncEngine, schema: str) -> set[Any]:
    async with engine.connect() as connection:
        return set((await connection.execute(select(inbox_table(schema).c.processed_at))).scalars())


async def test_a_failing_handler_rolls_back_only_its_own_entry_of_the_batch(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    record = recording_handler(schema)
    events = [new_event(n) for n in range(6)]
    raises_after_writing, breaks_a_statement = events[1].id, events[4].id
    healed = False
    calls: list[str] = []

    async def handler(session: AsyncSession, event: Event) -> None:
        calls.append(event.id)
        await record(session, event)
        if healed:
            return
        if event.id == raises_after_writing:
            raise RuntimeError("downstream said no")
        if event.id == breaks_a_statement:
            await session.execute(text(f'INSERT INTO "{schema}".effects (event_id) VALUES (NULL)'))

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, handler, batch_size=10)
    await publish_before_reading(redis_client, consumer, events)

    assert await consumer.read_new() == 6
    assert calls == [event.id for event in events]
    assert (consumer.stats.processed, consumer.stats.failures, consumer.stats.batch_fallbacks) == (4, 2, 0)
    assert await effect_count(db_engine, schema) == 4, "each failed handler's own writes must be rolled back"
    assert await inbox_count(db_engine, schema) == 4
    assert len(await inbox_times(db_engine, schema)) == 1, "the batch must be one transaction"
    assert await pending_count(redis_client, streams.events, streams.group) == 2

    healed = True
    await asyncio.sleep(consumer.min_idle_ms / 1000 + 0.05)
    assert await consumer.reclaim_idle() == 2
    assert calls[6:] == [raises_after_writing, breaks_a_statement]
    assert (consumer.stats.processed, consumer.stats.failures, consumer.stats.duplicates) == (6, 2, 0)
    assert await effect_count(db_engine, schema) == 6
    assert await pending_count(redis_client, streams.events, streams.group) == 0


def recording_batch_handler(schema: str, calls: list[list[str]], poison: set[str]) -> BatchHandler:
    record = text(f'INSERT INTO "{schema}".effects (event_id) SELECT unnest(CAST(:event_ids AS uuid[]))')

    async def apply(session: AsyncSession, events: Sequence[Event]) -> None:
        calls.append([event.id for event in events])
        await session.execute(record, {"event_ids": [event.event_uuid for event in events]})
        if poison & {event.id for event in events}:
            raise RuntimeError("this batch holds an event the handler cannot take")

    return BatchHandler(apply)


async def test_a_batch_handler_takes_the_new_events_of_a_batch_in_one_call(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    calls: list[list[str]] = []
    events = [new_event(n) for n in range(4)]
    consumer = make_consumer(
        redis_client, sessionmaker, schema, streams, recording_batch_handler(schema, calls, set()), batch_size=10
    )
    await publish_before_reading(redis_client, consumer, [*events, events[1]])

    assert await consumer.read_new() == 5
    assert calls == [[event.id for event in events]], "one call, each new event once, in stream order"
    assert (consumer.stats.processed, consumer.stats.duplicates, consumer.stats.failures) == (4, 1, 0)
    assert await effect_count(db_engine, schema) == 4
    assert len(await inbox_times(db_engine, schema)) == 1, "the batch must be one transaction"
    assert await pending_count(redis_client, streams.events, streams.group) == 0


async def test_a_failing_batch_handler_is_applied_one_event_at_a_time_and_the_poison_fails_alone(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    calls: list[list[str]] = []
    events = [new_event(n) for n in range(3)]
    poison = {events[1].id}
    consumer = make_consumer(
        redis_client, sessionmaker, schema, streams, recording_batch_handler(schema, calls, poison), batch_size=10
    )
    await publish_before_reading(redis_client, consumer, events)

    assert await consumer.read_new() == 3
    assert calls == [[event.id for event in events], *([event.id] for event in events)]
    assert (consumer.stats.processed, consumer.stats.failures, consumer.stats.batch_fallbacks) == (2, 1, 1)
    assert await effect_count(db_engine, schema) == 2, "nothing of the failed calls may be kept"
    assert await inbox_count(db_engine, schema) == 2
    assert await pending_count(redis_client, streams.events, streams.group) == 1

    poison.clear()
    await asyncio.sleep(consumer.min_idle_ms / 1000 + 0.05)
    assert await consumer.reclaim_idle() == 1
    assert calls[-1] == [events[1].id]
    assert await effect_count(db_engine, schema) == 3
    assert await pending_count(redis_client, streams.events, streams.group) == 0


async def test_a_handler_whose_objects_fail_to_flush_fails_alone(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    async with db_engine.begin() as connection:
        await connection.execute(
            text(f'CREATE TABLE "{schema}".orm_effects (id serial PRIMARY KEY, event_id uuid NOT NULL)')
        )

    class OrmEffect:
        def __init__(self, event_id: uuid.UUID | None) -> None:
            self.event_id = event_id

    orm_effects = Table(
        "orm_effects",
        MetaData(schema=schema),
        Column("id", Integer, primary_key=True),
        Column("event_id", Uuid, nullable=False),
    )
    registry().map_imperatively(OrmEffect, orm_effects)
    events = [new_event(n) for n in range(4)]
    unflushable = events[1].id

    async def handler(session: AsyncSession, event: Event) -> None:
        # Added, never flushed by the handler: the consumer's flush finds the NULL.
        session.add(OrmEffect(None if event.id == unflushable else event.event_uuid))

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, handler, batch_size=10)
    await publish_before_reading(redis_client, consumer, events)

    assert await consumer.read_new() == 4
    assert (consumer.stats.processed, consumer.stats.failures, consumer.stats.batch_fallbacks) == (3, 1, 0)
    async with db_engine.connect() as connection:
        stored = (await connection.execute(select(orm_effects.c.event_id))).scalars()
        assert sorted(str(event_id) for event_id in stored) == sorted(e.id for e in events if e.id != unflushable)
    assert await inbox_count(db_engine, schema) == 3
    assert await pending_count(redis_client, streams.events, streams.group) == 1


@pytest.mark.parametrize("misbehaviour", ["commits", "rolls back", "breaks the commit"])
async def test_a_handler_that_breaks_the_batch_transaction_fails_alone(
    misbehaviour: str,
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    async with db_engine.begin() as connection:
        await connection.execute(
            text(f'CREATE TABLE "{schema}".checked_at_commit (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)')
        )
    record = recording_handler(schema)
    events = [new_event(n) for n in range(5)]
    poison = events[2].id

    async def handler(session: AsyncSession, event: Event) -> None:
        await record(session, event)
        if event.id != poison:
            return
        if misbehaviour == "commits":
            await session.commit()
        elif misbehaviour == "rolls back":
            await session.rollback()
        else:
            insert_twice = text(f'INSERT INTO "{schema}".checked_at_commit (k) VALUES (1), (1)')
            await session.execute(insert_twice)

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, handler, batch_size=10)
    await publish_before_reading(redis_client, consumer, events)

    assert await consumer.read_new() == 5
    assert consumer.stats.batch_fallbacks == 1
    assert (consumer.stats.processed, consumer.stats.failures) == (4, 1)
    async with db_engine.connect() as connection:
        effects = (await connection.execute(text(f'SELECT event_id::text FROM "{schema}".effects'))).scalars()
        assert sorted(effects) == sorted(event.id for event in events if event.id != poison)
    assert await inbox_count(db_engine, schema) == 4
    [poison_entry] = [r.entry_id for r in await read_records(redis_client, streams.events) if r.fields["id"] == poison]
    assert await pending_entry_ids(redis_client, streams.events, streams.group) == [poison_entry]


async def test_a_copy_of_an_event_later_in_the_batch_runs_when_the_first_copy_failed(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    record = recording_handler(schema)
    calls = 0

    async def fails_the_first_time(session: AsyncSession, event: Event) -> None:
        nonlocal calls
        calls += 1
        await record(session, event)
        if calls == 1:
            raise ConnectionError("downstream unavailable")

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, fails_the_first_time, batch_size=10)
    event = new_event()
    await publish_before_reading(redis_client, consumer, [event, event])

    assert await consumer.read_new() == 2
    assert (calls, consumer.stats.failures, consumer.stats.processed) == (2, 1, 1)
    assert await effect_count(db_engine, schema) == 1
    assert await pending_count(redis_client, streams.events, streams.group) == 1

    await asyncio.sleep(consumer.min_idle_ms / 1000 + 0.05)
    assert await consumer.reclaim_idle() == 1
    assert (calls, consumer.stats.duplicates) == (2, 1)
    assert await effect_count(db_engine, schema) == 1
    assert await pending_count(redis_client, streams.events, streams.group) == 0


async def test_malformed_entries_go_to_the_dead_letter_stream(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    consumer = make_consumer(redis_client, sessionmaker, schema, streams, recording_handler(schema))
    good = new_event()
    valid = good.to_fields()
    malformed: list[dict[Any, Any]] = [
        {"hello": "world"},
        {**valid, "id": str(uuid.uuid4()), "event": "{broken"},
        {"id": valid["id"], "type": "NotDotted", "event": valid["event"].replace("test.item.created", "NotDotted")},
        {b"id": b"\xff", b"type": b"x.y", b"event": b"{}"},
    ]
    async with Running(consumer):
        for fields in malformed:
            await redis_client.xadd(streams.events, fields)
        await publish_event(redis_client, streams.events, good)
        await wait_for_stream_length(redis_client, streams.dead, len(malformed), within=5)

        async def good_one_handled() -> bool:
            return consumer.stats.processed == 1

        await wait_until(good_one_handled, what="the valid event after the malformed ones")
        await wait_until_acknowledged(redis_client, streams.events, streams.group)

    letters = await read_records(redis_client, streams.dead)
    published = await read_records(redis_client, streams.events)
    assert [letter.fields["entry_id"] for letter in letters] == [r.entry_id for r in published[: len(malformed)]]
    assert {letter.fields["reason"] for letter in letters} == {"invalid_envelope"}
    assert "missing field(s) id, type, event" in letters[0].fields["detail"]
    assert "not JSON" in letters[1].fields["detail"]
    assert "type" in letters[2].fields["detail"]
    assert original_fields(letters[0]) == {"hello": "world"}
    assert consumer.stats.dead_lettered == len(malformed)
    assert await effect_count(db_engine, schema) == 1


async def test_restarted_consumer_finishes_its_own_pending_entries_first(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    await redis_client.xgroup_create(streams.events, streams.group, id="$", mkstream=True)
    events = [new_event(n) for n in range(3)]
    for event in events:
        await publish_event(redis_client, streams.events, event)
    # Delivered to "worker-1" by a run that died before handling them.
    await redis_client.xreadgroup(streams.group, "worker-1", {streams.events: ">"}, count=10)
    assert await pending_count(redis_client, streams.events, streams.group) == 3

    handled: list[Event] = []

    async def handler(session: AsyncSession, event: Event) -> None:
        handled.append(event)

    # Reclaiming is effectively off, so only the read of its own pending entries (id 0) can find them.
    consumer = make_consumer(redis_client, sessionmaker, schema, streams, handler, min_idle_ms=600_000)
    async with Running(consumer):

        async def done() -> bool:
            return consumer.stats.processed == 3

        await wait_until(done, what="the restarted consumer to finish its pending entries")

    assert handled == events
    assert consumer.stats.reclaimed == 0
    assert await pending_count(redis_client, streams.events, streams.group) == 0


async def test_entry_deleted_while_pending_is_acknowledged_and_dropped(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    await redis_client.xgroup_create(streams.events, streams.group, id="$", mkstream=True)
    entry_id = await publish_event(redis_client, streams.events, new_event())
    await redis_client.xreadgroup(streams.group, "worker-1", {streams.events: ">"}, count=10)
    await redis_client.xdel(streams.events, entry_id)

    consumer = make_consumer(
        redis_client, sessionmaker, schema, streams, recording_handler(schema), min_idle_ms=600_000
    )
    async with Running(consumer):
        await wait_until_acknowledged(redis_client, streams.events, streams.group)

    assert consumer.stats.missing == 1
    assert await effect_count(db_engine, schema) == 0


async def test_one_consumer_reads_several_streams(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    consumer = make_consumer(
        redis_client,
        sessionmaker,
        schema,
        streams,
        recording_handler(schema),
        stream_names=[streams.events, streams.other],
    )
    async with Running(consumer):
        await publish_event(redis_client, streams.events, new_event(1))
        await publish_event(redis_client, streams.other, new_event(2))

        async def both() -> bool:
            return consumer.stats.processed == 2

        await wait_until(both, what="an event from each stream")

    assert await effect_count(db_engine, schema) == 2


async def test_handle_entry_reports_the_outcome(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    consumer = make_consumer(redis_client, sessionmaker, schema, streams, recording_handler(schema))
    await consumer.ensure_groups()
    event = new_event()
    fields = event.to_fields()

    assert await consumer.handle_entry(streams.events, "1-1", fields, 1) == Outcome.PROCESSED
    assert await consumer.handle_entry(streams.events, "1-2", fields, 1) == Outcome.DUPLICATE
    assert await consumer.handle_entry(streams.events, "1-3", fields, 99) == Outcome.DUPLICATE
    assert await consumer.handle_entry(streams.events, "1-4", new_event().to_fields(), 6) == Outcome.DEAD_LETTERED
    assert await consumer.handle_entry(streams.events, "1-5", {"x": "y"}, 1) == Outcome.DEAD_LETTERED
    assert await effect_count(db_engine, schema) == 1


async def test_old_inbox_rows_are_pruned(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    streams: Streams,
) -> None:
    consumer = make_consumer(redis_client, sessionmaker, schema, streams, recording_handler(schema))
    old, recent = new_event(1), new_event(2)
    for number, event in enumerate((old, recent)):
        assert await consumer.handle_entry(streams.events, f"1-{number}", event.to_fields(), 1) == Outcome.PROCESSED
    inbox = inbox_table(schema)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(inbox).where(inbox.c.event_id == old.event_uuid).values(processed_at=func.now() - timedelta(days=8))
        )

    assert await delete_old_inbox_rows(sessionmaker, schema, timedelta(days=7)) == 1
    assert await inbox_count(db_engine, schema) == 1
    with pytest.raises(ValueError, match="positive"):
        await delete_old_inbox_rows(sessionmaker, schema, timedelta(0))


async def test_stop_returns_promptly_when_idle(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    streams: Streams,
) -> None:
    consumer = make_consumer(redis_client, sessionmaker, schema, streams, recording_handler(schema), block_ms=300)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.2)
    consumer.stop()

    await asyncio.wait_for(task, timeout=1)
    assert consumer.stats.loop_errors == 0


async def test_a_cancellation_swallowed_on_its_way_still_ends_the_consumer(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    streams: Streams,
) -> None:
    # redis-py on Python 3.11 can swallow a cancellation (its writes go through `asyncio.wait_for`); here the
    # handler swallows it, deterministically. The consumer must still end rather than read on for ever.
    handling = asyncio.Event()

    async def swallowing_handler(session: AsyncSession, event: Event) -> None:
        handling.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)

    consumer = make_consumer(redis_client, sessionmaker, schema, streams, swallowing_handler, block_ms=300)
    await consumer.ensure_groups()
    task = asyncio.create_task(consumer.run())
    await publish_event(redis_client, streams.events, new_event())
    await handling.wait()
    task.cancel()

    done, _ = await asyncio.wait({task}, timeout=10)
    assert task in done, "the consumer ran on after its cancellation"
    assert task.cancelled()


async def test_configuration_is_checked(
    mirante_urls: StackUrls,
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    streams: Streams,
) -> None:
    handler = recording_handler(schema)
    short_timeout = Redis.from_url(mirante_urls.redis_url, socket_timeout=1)
    try:
        with pytest.raises(ValueError, match="socket timeout"):
            make_consumer(short_timeout, sessionmaker, schema, streams, handler, block_ms=1000)
        make_consumer(short_timeout, sessionmaker, schema, streams, handler, block_ms=900)
    finally:
        await short_timeout.aclose()
    with pytest.raises(ValueError, match="max_deliveries"):
        make_consumer(redis_client, sessionmaker, schema, streams, handler, max_deliveries=0)
    with pytest.raises(ValueError, match="streams"):
        make_consumer(redis_client, sessionmaker, schema, streams, handler, stream_names=[])
    with pytest.raises(ValueError, match="dead-letter"):
        make_consumer(redis_client, sessionmaker, schema, streams, handler, stream_names=[streams.dead])
    with pytest.raises(ValueError, match="identifier"):
        StreamConsumer(redis_client, sessionmaker, "s", "g", "c", handler, "Not A Schema")


def original_fields(letter: StreamRecord) -> dict[str, str]:
    prefix = "original."
    return {name[len(prefix) :]: value for name, value in letter.fields.items() if name.startswith(prefix)}
