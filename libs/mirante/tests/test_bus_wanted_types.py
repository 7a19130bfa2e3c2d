"""A consumer's `wanted_types`: entries of other types cost no parsing and no statement and are acknowledged;
`TypeInterest` keeps the wanted types and never skips an event a change committed before needs (at once after a
bump in this process, after `max_age` otherwise)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.bus import Event, Outcome, StreamConsumer, TypeInterest, WantedTypes, fixed_types
from mirante.bus.tables import inbox_table
from mirante.testing.streams import pending_count, publish_event, read_records

WANTED = "test.thing.wanted"
OTHER = "test.thing.other"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def interest_table(db_engine: AsyncEngine, schema: str) -> AsyncIterator[str]:
    """`subscriptions(event_type, enabled)` in the scratch schema: what a service's subscriptions or rules are."""
    async with db_engine.begin() as connection:
        await connection.execute(
            text(f'CREATE TABLE "{schema}".subscriptions (event_type text NOT NULL, enabled boolean NOT NULL)')
        )
    yield f'"{schema}".subscriptions'


def loader(table: str) -> Any:
    query = text(f"SELECT DISTINCT event_type FROM {table} WHERE enabled")

    async def load(session: AsyncSession) -> list[str]:
        return list((await session.scalars(query)).all())

    return load


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        self.seen.append(event)


def consumer_on(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    stream: str,
    handler: Recorder,
    wanted_types: WantedTypes,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        sessionmaker,
        stream,
        f"group-{stream}",
        "worker",
        handler,
        schema,
        block_ms=50,
        dead_letter_stream=f"{stream}-dead",
        wanted_types=wanted_types,
    )


async def inbox_rows(engine: AsyncEngine, schema: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.scalar(select(func.count()).select_from(inbox_table(schema)))) or 0)


@contextmanager
def statements_on(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL sent through `engine` inside the block."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    sqlalchemy_event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sqlalchemy_event.remove(engine.sync_engine, "before_cursor_execute", record)


async def read_one_batch(redis: Redis, consumer: StreamConsumer, *events: Event | dict[str, str]) -> None:
    for item in events:
        if isinstance(item, Event):
            await publish_event(redis, consumer.streams[0], item)
        else:
            await redis.xadd(consumer.streams[0], item)  # type: ignore[arg-type]
    assert await consumer.read_new() == len(events)


def new(event_type: str) -> Event:
    return Event(source="mirante/test", type=event_type, data={})


async def test_events_turned_down_cost_no_statement_and_are_acknowledged(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_engine: AsyncEngine,
    schema: str,
    stream: str,
) -> None:
    handler = Recorder()
    consumer = consumer_on(redis_client, sessionmaker, schema, stream, handler, fixed_types({WANTED}))
    await consumer.ensure_groups()

    with statements_on(db_engine) as sent:
        await read_one_batch(redis_client, consumer, new(OTHER), new(OTHER))
    assert sent == [], "a batch of unwanted events opens no transaction"
    assert handler.seen == [] and consumer.stats.skipped == 2
    assert await pending_count(redis_client, stream, consumer.group) == 0

    wanted = new(WANTED)
    await read_one_batch(redis_client, consumer, new(OTHER), wanted, new(OTHER))
    assert [event.id for event in handler.seen] == [wanted.id]
    assert (consumer.stats.skipped, consumer.stats.processed) == (4, 1)
    assert await inbox_rows(db_engine, schema) == 1, "only the handled event is in the inbox"
    assert await pending_count(redis_client, stream, consumer.group) == 0


async def test_an_entry_is_judged_by_its_type_field_and_one_without_it_is_screened(
    redis_client: Redis, sessionmaker: async_sessionmaker[AsyncSession], schema: str, stream: str
) -> None:
    handler = Recorder()
    consumer = consumer_on(redis_client, sessionmaker, schema, stream, handler, fixed_types({WANTED}))
    await consumer.ensure_groups()
    unwanted_and_broken = {"id": "1", "type": OTHER, "event": "{not json"}
    no_type = {"id": "2", "event": "{}"}
    wanted_and_broken = {"id": "3", "type": WANTED, "event": "{not json"}

    await read_one_batch(redis_client, consumer, unwanted_and_broken, no_type, wanted_and_broken)

    assert (consumer.stats.skipped, consumer.stats.dead_lettered) == (1, 2)
    dead = await read_records(redis_client, f"{stream}-dead")
    assert sorted(record.fields["original.id"] for record in dead) == ["2", "3"]
    assert await pending_count(redis_client, stream, consumer.group) == 0
    await redis_client.delete(f"{stream}-dead")


async def test_the_outcome_of_a_skipped_entry_is_reported(
    redis_client: Redis, sessionmaker: async_sessionmaker[AsyncSession], schema: str, stream: str
) -> None:
    consumer = consumer_on(redis_client, sessionmaker, schema, stream, Recorder(), fixed_types(()))
    await consumer.ensure_groups()
    item = new(OTHER)
    entry_id = await publish_event(redis_client, stream, item)

    outcome = await consumer.handle_entry(stream, entry_id, item.to_fields(), 1)

    assert outcome is Outcome.SKIPPED


async def test_wanted_types_that_cannot_be_read_let_the_whole_batch_through(
    redis_client: Redis, sessionmaker: async_sessionmaker[AsyncSession], schema: str, stream: str
) -> None:
    async def broken() -> frozenset[str]:
        raise RuntimeError("the rules table is gone")

    handler = Recorder()
    consumer = consumer_on(redis_client, sessionmaker, schema, stream, handler, broken)
    await consumer.ensure_groups()
    await read_one_batch(redis_client, consumer, new(OTHER), new(WANTED))
    assert len(handler.seen) == 2 and consumer.stats.skipped == 0


async def test_a_change_bumped_after_commit_applies_to_every_event_read_after_it(
    redis_client: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    stream: str,
    interest_table: str,
) -> None:
    # An hour of `max_age`: only the bump can make the consumer see the change.
    interest = TypeInterest(sessionmaker, loader(interest_table), max_age=3600)
    handler = Recorder()
    consumer = consumer_on(redis_client, sessionmaker, schema, stream, handler, interest.types)
    await consumer.ensure_groups()
    await read_one_batch(redis_client, consumer, new(WANTED))
    assert handler.seen == [] and interest.loads == 1

    async with sessionmaker() as session, session.begin():
        await session.execute(text(f"INSERT INTO {interest_table} VALUES (:type, true)"), {"type": WANTED})
        interest.bump_after_commit(session)
        # Read before the commit, the old types must not be kept as fresh for the events after it.
        await read_one_batch(redis_client, consumer, new(WANTED))
        assert handler.seen == [] and interest.loads == 1, "not bumped before the commit"
    after = new(WANTED)
    await read_one_batch(redis_client, consumer, after)
    assert [event.id for event in handler.seen] == [after.id]
    assert interest.loads == 2
    await read_one_batch(redis_client, consumer, new(WANTED), new(OTHER))
    assert interest.loads == 2, "read again only after a bump or max_age"
    assert consumer.stats.processed == 2


async def test_a_rolled_back_change_bumps_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], interest_table: str
) -> None:
    interest = TypeInterest(sessionmaker, loader(interest_table), max_age=3600)
    assert await interest.types() == frozenset()
    async with sessionmaker() as session:
        await session.begin()
        await session.execute(text(f"INSERT INTO {interest_table} VALUES (:type, true)"), {"type": WANTED})
        interest.bump_after_commit(session)
        await session.rollback()
    await interest.types()
    assert interest.loads == 1


async def test_a_change_made_elsewhere_applies_once_max_age_has_passed(
    sessionmaker: async_sessionmaker[AsyncSession], interest_table: str
) -> None:
    clock = Clock()
    interest = TypeInterest(sessionmaker, loader(interest_table), max_age=2.0, clock=clock)
    assert await interest.types() == frozenset()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(f"INSERT INTO {interest_table} VALUES (:type, true), (:other, false)"),
            {
                "type": WANTED,
                "other": OTHER,
            },
        )

    clock.now += 1.9
    assert await interest.types() == frozenset(), "kept for max_age"
    clock.now += 0.1
    assert await interest.types() == {WANTED}
    assert interest.loads == 2


async def test_types_read_while_a_bump_arrives_are_used_once_and_not_kept(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow(session: AsyncSession) -> list[str]:
        reading.set()
        await release.wait()
        return [OTHER]

    interest = TypeInterest(sessionmaker, slow, max_age=3600)
    first = asyncio.create_task(interest.types())
    await reading.wait()
    interest.bump()
    release.set()
    assert await first == frozenset({OTHER})
    await interest.types()
    assert interest.loads == 2, "the read that overlapped a bump may predate the change it stands for"


def test_max_age_cannot_be_negative(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(ValueError, match="max_age"):
        TypeInterest(sessionmaker, loader("t"), max_age=-1)
