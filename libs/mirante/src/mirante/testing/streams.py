"""Test helpers for the event bus: publish and read stream entries, wait for them and for consumer groups, scratch
bus schemas, and a Redis of a test's own (`own_redis`, registered by the `mirante` pytest plugin)."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.bus.envelope import Event
from mirante.bus.tables import bus_tables
from mirante.db import checked_identifier
from mirante.devstack.errors import StackError
from mirante.devstack.redis_server import EmbeddedRedis

DEFAULT_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.02
OWN_REDIS_START_SECONDS = 30.0


class WaitTimeoutError(AssertionError):
    """A wait in a test did not see what it expected in time (a failed expectation, hence an assertion)."""


@dataclass(frozen=True)
class StreamRecord:
    """One stream entry with its fields decoded to text."""

    entry_id: str
    fields: dict[str, str]

    def event(self) -> Event:
        """The event this entry carries; raises `InvalidEventError` when it is not a valid envelope."""
        return Event.from_fields(self.fields)


def unique_name(prefix: str = "test") -> str:
    """A name no other test uses, for streams, groups and consumers."""
    return f"{prefix}:{uuid.uuid4().hex}"


async def publish_event(redis: Redis, stream: str, event: Event) -> str:
    """`XADD` an event the way the outbox relay does; returns the entry id."""
    # redis-py types the field map invariantly, so a dict[str, str] needs the cast.
    entry_id: Any = await redis.xadd(stream, cast("dict[FieldT, EncodableT]", event.to_fields()))
    return _text(entry_id)


async def read_records(redis: Redis, stream: str, start: str = "-", end: str = "+") -> list[StreamRecord]:
    """Every entry of `stream` between `start` and `end` (inclusive), oldest first."""
    entries: Any = await redis.xrange(stream, min=start, max=end)
    return [
        StreamRecord(_text(entry_id), {_text(key): _text(value) for key, value in fields.items()})
        for entry_id, fields in entries
    ]


async def read_events(redis: Redis, stream: str, start: str = "-", end: str = "+") -> list[Event]:
    """The events on `stream`, oldest first; raises `InvalidEventError` on an entry that is not an event."""
    return [record.event() for record in await read_records(redis, stream, start, end)]


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], *, within: float = DEFAULT_TIMEOUT_SECONDS, what: str = "condition"
) -> None:
    """Poll `check` (a plain or an async callable) until it returns true; raises `WaitTimeoutError` naming `what`
    after `within` s."""
    deadline = time.monotonic() + within
    while not await _holds(check):
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(f"timed out after {within:.1f} s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


async def _holds(check: Callable[[], Awaitable[bool] | bool]) -> bool:
    outcome = check()
    return bool(await outcome) if inspect.isawaitable(outcome) else bool(outcome)


async def wait_for_stream_length(
    redis: Redis, stream: str, length: int, *, within: float = DEFAULT_TIMEOUT_SECONDS
) -> int:
    """Wait until `stream` holds at least `length` entries; returns the length seen."""
    seen = 0

    async def long_enough() -> bool:
        nonlocal seen
        seen = int(await redis.xlen(stream))
        return seen >= length

    try:
        await wait_until(long_enough, within=within, what=f"{length} entries on {stream}")
    except WaitTimeoutError as error:
        raise WaitTimeoutError(f"{error} (it holds {seen})") from None
    return seen


async def wait_for_events(
    redis: Redis, stream: str, count: int, *, within: float = DEFAULT_TIMEOUT_SECONDS
) -> list[Event]:
    """Wait until `stream` holds at least `count` entries and return its events."""
    await wait_for_stream_length(redis, stream, count, within=within)
    return await read_events(redis, stream)


async def pending_count(redis: Redis, stream: str, group: str) -> int:
    """How many entries of `stream` the group has delivered but not acknowledged."""
    summary: Any = await redis.xpending(stream, group)
    return int(summary["pending"])


async def pending_entry_ids(redis: Redis, stream: str, group: str, *, limit: int = 1_000) -> list[str]:
    """Ids of the entries of `stream` the group has delivered but not acknowledged (at most `limit`), oldest first."""
    pending: Any = await redis.xpending_range(stream, group, min="-", max="+", count=limit)
    return [_text(item["message_id"]) for item in pending]


async def pending_by_consumer(redis: Redis, stream: str, group: str) -> dict[str, int]:
    """Pending entry counts of the group's members that have any."""
    summary: Any = await redis.xpending(stream, group)
    return {_text(item["name"]): int(item["pending"]) for item in summary["consumers"]}


async def wait_until_acknowledged(
    redis: Redis, stream: str, group: str, *, within: float = DEFAULT_TIMEOUT_SECONDS
) -> None:
    """Wait until the group has nothing pending on `stream`."""

    async def nothing_pending() -> bool:
        return await pending_count(redis, stream, group) == 0

    await wait_until(nothing_pending, within=within, what=f"group {group} to acknowledge all of {stream}")


async def consumer_groups(redis: Redis, stream: str) -> set[str]:
    """Names of the consumer groups on `stream` (none when the stream does not exist)."""
    if not await redis.exists(stream):
        return set()
    groups: Any = await redis.xinfo_groups(stream)
    return {_text(group["name"]) for group in groups}


async def wait_for_consumer_groups(
    redis: Redis, groups: Mapping[str, Sequence[str]], *, within: float = DEFAULT_TIMEOUT_SECONDS
) -> None:
    """Wait until each stream holds the groups named for it (`{stream: [group, ...]}`).

    A new group starts at the end of its stream, so an event published before an app's consumers have created
    their groups is never read by them: a test waits for the groups before it publishes."""
    missing: dict[str, set[str]] = {}

    async def all_there() -> bool:
        missing.clear()
        for stream, names in groups.items():
            absent = set(names) - await consumer_groups(redis, stream)
            if absent:
                missing[stream] = absent
        return not missing

    try:
        await wait_until(all_there, within=within, what="the consumer groups")
    except WaitTimeoutError as error:
        described = "; ".join(f"{stream}: {', '.join(sorted(names))}" for stream, names in sorted(missing.items()))
        raise WaitTimeoutError(f"{error} (missing {described})") from None


async def delete_streams(redis: Redis, *streams: str) -> None:
    """Delete the streams (with their consumer groups)."""
    if streams:
        await redis.delete(*streams)


@asynccontextmanager
async def scratch_bus_schema(engine: AsyncEngine, prefix: str = "bus_test") -> AsyncIterator[str]:
    """A throwaway schema with the bus tables the migrations create; dropped with everything in it."""
    schema = checked_identifier(f"{prefix}_{uuid.uuid4().hex[:12]}")
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        for table in bus_tables(schema):
            await connection.run_sync(table.create)
    try:
        yield schema
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def own_redis() -> Iterator[str]:
    """The URL of a Redis of this test alone (the embedded stack's `redis-server`), stopped after the test.

    For tests that run an app with its stream consumers under their fixed group names: on the run's Redis, which
    other runs on the machine share, any app of theirs running at the same time would join those groups and take
    a share of the test's events (and its own events would reach the test's app). Skipped where the embedded
    Redis is not installed (`mirante[embedded]`)."""
    # Not under pytest's tmp_path: the server's Unix socket path must stay short (about 100 bytes at most).
    folder = Path(tempfile.mkdtemp(prefix="mirante-redis-"))
    server = EmbeddedRedis(folder)
    try:
        try:
            url = server.start(OWN_REDIS_START_SECONDS)
        except StackError as error:
            pytest.skip(f"no Redis of the test's own: {error}")
        yield url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
