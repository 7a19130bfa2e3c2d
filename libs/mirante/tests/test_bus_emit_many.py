"""Producers in bulk: `emit_many` queues a list of events with one statement; `emit` costs one statement too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import event, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.bus.envelope import Event
from mirante.bus.outbox import emit, emit_many, outbox_insert
from mirante.bus.relay import OutboxRelay
from mirante.bus.tables import outbox_table
from mirante.testing.streams import read_events

# 6 columns per row: a VALUES list of this many rows would exceed PostgreSQL's 32,767 bind parameters.
ROWS_BEYOND_THE_PARAMETER_LIMIT = 6_000


def make_events(count: int, kind: str = "test.item.created") -> list[Event]:
    return [Event(source="mirante/test", type=kind, subject=f"item/{n}", data={"n": n}) for n in range(count)]


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements sent to the server while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def outbox_count(sessionmaker: async_sessionmaker[AsyncSession], schema: str) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(outbox_table(schema)))).scalar_one())


async def test_emit_many_is_one_insert_and_the_relay_publishes_in_list_order(
    db_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    redis_client: Redis,
    stream: str,
) -> None:
    events = make_events(200)
    async with sessionmaker() as session, session.begin():
        await session.connection()
        with statements_sent(db_engine) as sent:
            await emit_many(session, schema, events)
    assert len(sent) == 1
    assert sent[0].lstrip().upper().startswith("INSERT INTO")

    relay = OutboxRelay(sessionmaker, schema=schema, redis=redis_client, stream=stream, batch_size=500)
    assert await relay.publish_batch() == 200
    assert await read_events(redis_client, stream) == events


async def test_emit_is_one_insert_without_returning(
    db_engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], schema: str
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.connection()
        with statements_sent(db_engine) as sent:
            for single in make_events(3):
                await emit(session, schema, single)
    assert len(sent) == 3
    assert all(statement.lstrip().upper().startswith("INSERT INTO") for statement in sent)
    assert not any("RETURNING" in statement.upper() for statement in sent)
    assert await outbox_count(sessionmaker, schema) == 3


async def test_emit_and_emit_many_in_one_transaction_keep_the_call_order(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, redis_client: Redis, stream: str
) -> None:
    before, middle, after = make_events(1, "test.item.before"), make_events(50), make_events(2, "test.item.after")
    async with sessionmaker() as session, session.begin():
        await emit(session, schema, before[0])
        await emit_many(session, schema, middle)
        for event_after in after:
            await emit(session, schema, event_after)

    outbox = outbox_table(schema)
    async with sessionmaker() as session:
        times = (await session.execute(select(outbox.c.created_at))).scalars().all()
    assert len(set(times)) == len(times) == 53, "every row needs its own time for a stable order"
    relay = OutboxRelay(sessionmaker, schema=schema, redis=redis_client, stream=stream, batch_size=100)
    assert await relay.publish_batch() == 53
    assert await read_events(redis_client, stream) == before + middle + after


async def test_emit_many_takes_more_rows_than_a_values_list_could(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str
) -> None:
    events = make_events(ROWS_BEYOND_THE_PARAMETER_LIMIT)
    async with sessionmaker() as session, session.begin():
        await emit_many(session, schema, events)

    outbox = outbox_table(schema)
    async with sessionmaker() as session:
        row = (await session.execute(select(outbox).where(outbox.c.id == events[-1].event_uuid))).one()
    assert Event.from_envelope(row.envelope) == events[-1]
    assert (row.subject, row.published_at) == (events[-1].subject, None)
    assert await outbox_count(sessionmaker, schema) == ROWS_BEYOND_THE_PARAMETER_LIMIT


async def test_emit_many_does_not_commit_and_does_nothing_for_no_events(
    db_engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], schema: str
) -> None:
    async with sessionmaker() as session:
        async with session.begin():
            await emit_many(session, schema, make_events(3))
            assert await outbox_count(sessionmaker, schema) == 0, "visible before the caller committed"
            await session.rollback()
        async with session.begin():
            await session.connection()
            with statements_sent(db_engine) as sent:
                await emit_many(session, schema, [])
    assert sent == []
    assert await outbox_count(sessionmaker, schema) == 0


async def test_bad_input_is_refused_before_anything_is_written(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str
) -> None:
    first, second = make_events(2)
    async with sessionmaker() as session, session.begin():
        with pytest.raises(TypeError, match="Event"):
            await emit_many(session, schema, [first, {"type": "test.item.created"}])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="sequence"):
            await emit_many(session, schema, first)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="same event id"):
            await emit_many(session, schema, [first, second, first])
        with pytest.raises(ValueError, match="identifier"):
            await emit_many(session, "Not A Schema", [first])
        with pytest.raises(TypeError, match="Event"):
            await emit(session, schema, "not an event")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="identifier"):
            await emit(session, "Not A Schema", first)
    assert await outbox_count(sessionmaker, schema) == 0


async def test_outbox_insert_travels_inside_another_statement(
    db_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    redis_client: Redis,
    stream: str,
) -> None:
    events = make_events(3)
    built = outbox_insert(schema, events)
    assert built is not None and outbox_insert(schema, []) is None
    statement, parameters = built
    assert all(name.startswith("outbox_") for name in parameters)
    # A caller's own statement carrying the events as a data-modifying CTE: one round trip for both.
    carrier = select(literal(1)).add_cte(statement.cte("events"))
    async with sessionmaker() as session, session.begin():
        await session.connection()
        with statements_sent(db_engine) as sent:
            await session.execute(carrier, parameters)
    assert len(sent) == 1

    relay = OutboxRelay(sessionmaker, schema=schema, redis=redis_client, stream=stream)
    assert await relay.publish_batch() == 3
    assert await read_events(redis_client, stream) == events


def test_outbox_insert_refuses_what_emit_many_refuses() -> None:
    with pytest.raises(TypeError):
        outbox_insert("bus_test", ["not an event"])  # type: ignore[list-item]
    twice = make_events(1) * 2
    with pytest.raises(ValueError, match="same event id"):
        outbox_insert("bus_test", twice)


async def test_the_relay_marks_any_batch_size_with_the_same_statement(
    db_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    schema: str,
    redis_client: Redis,
    stream: str,
) -> None:
    # One statement text for every batch size, so the driver prepares it once per connection.
    relay = OutboxRelay(sessionmaker, schema=schema, redis=redis_client, stream=stream)
    marks = []
    for size in (2, 3):
        async with sessionmaker() as session, session.begin():
            await emit_many(session, schema, make_events(size))
        with statements_sent(db_engine) as sent:
            assert await relay.publish_batch() == size
        marks += [statement for statement in sent if statement.lstrip().upper().startswith("UPDATE")]
    assert len(marks) == 2 and marks[0] == marks[1]
