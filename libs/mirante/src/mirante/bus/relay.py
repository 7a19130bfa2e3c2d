"""The outbox relay: publishes committed outbox rows to the service's Redis stream, at least once.

Each batch is one transaction: claim the oldest unpublished rows with `FOR UPDATE SKIP LOCKED` (so relays
running beside each other take disjoint rows and never wait on each other), `XADD` them in order, mark them
published, commit. A crash between `XADD` and the commit publishes those rows again; consumers dedupe on
the event id. Rows are claimed by state (`published_at IS NULL`), never through an id cursor, because rows
commit out of order and a cursor would skip the late ones. Streams are never trimmed here: trimming can
drop events a consumer group has not acknowledged yet.

An idle relay (its last batch found nothing) first looks for an unpublished row with one statement through the
driver, outside any transaction: most of its looks find nothing (four a second in every service), and a claim's
transaction costs three round trips and about three times the CPU of that look. A busy relay claims at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT
from sqlalchemy import ARRAY, CursorResult, Text, any_, bindparam, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Select

from mirante.aio import raise_if_cancel_requested, wait_event
from mirante.backoff import Backoff
from mirante.bus.envelope import FIELD_EVENT, FIELD_ID, FIELD_TYPE
from mirante.bus.tables import outbox_table
from mirante.db import engine_of
from mirante.db_driver import DriverStatement, pooled_driver

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
DEFAULT_POLL_INTERVAL_SECONDS = 0.25
DEFAULT_LINGER_SECONDS = 0.05
DEFAULT_RETENTION = timedelta(hours=24)
DEFAULT_CLEANUP_INTERVAL_SECONDS = 300.0
CLEANUP_BATCH_SIZE = 5000
FAILURE_BACKOFF_BASE_SECONDS = 0.5
FAILURE_BACKOFF_CAP_SECONDS = 5.0


@dataclass
class RelayStats:
    """Running totals, in a shape that maps directly onto Prometheus counters."""

    published: int = 0
    batches: int = 0
    failures: int = 0
    cleaned: int = 0


class OutboxRelay:
    """Moves events from `<schema>.outbox` to `stream`; `run()` loops until cancelled or `stop()`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        schema: str,
        redis: Redis,
        stream: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        linger: float = DEFAULT_LINGER_SECONDS,
        retention: timedelta = DEFAULT_RETENTION,
        cleanup_interval: float = DEFAULT_CLEANUP_INTERVAL_SECONDS,
    ) -> None:
        if not stream:
            raise ValueError("stream must be a non-empty name")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if poll_interval <= 0 or cleanup_interval <= 0:
            raise ValueError("poll_interval and cleanup_interval must be positive")
        if retention < timedelta(0):
            raise ValueError("retention must not be negative")
        if linger < 0:
            raise ValueError("linger must not be negative")
        self._sessionmaker = sessionmaker
        self._outbox = outbox_table(schema)
        self._engine = engine_of(sessionmaker)
        self._any_unpublished = DriverStatement.of(unpublished_row_query(schema))
        self._redis = redis
        self.schema = schema
        self.stream = stream
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.linger = linger
        self.retention = retention
        self.cleanup_interval = cleanup_interval
        self.stats = RelayStats()
        self._idle = True
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """Skip the rest of the current poll sleep (e.g. right after a commit that emitted events)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask `run()` to return after the batch in progress."""
        self._stopping.set()
        self._wake.set()

    async def publish_batch(self) -> int:
        """Publish up to `batch_size` of the oldest unpublished rows; returns how many were published."""
        if self._idle and not await self._anything_unpublished():
            return 0
        published = await self._claim_and_publish()
        self._idle = published == 0
        return published

    async def _anything_unpublished(self) -> bool:
        async with pooled_driver(self._engine) as connection:
            return bool(await self._any_unpublished.fetch(connection, {}))

    async def _claim_and_publish(self) -> int:
        outbox = self._outbox
        async with self._sessionmaker() as session, session.begin():
            # The envelope as PostgreSQL's text: the stream entry carries it as it is, never decoded here.
            claimed = await session.execute(
                select(outbox.c.id, outbox.c.type, outbox.c.envelope.cast(Text).label("envelope"))
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.created_at, outbox.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = claimed.all()
            if not rows:
                return 0
            # One MULTI/EXEC in claim order: a connection lost midway adds none of the batch.
            async with self._redis.pipeline(transaction=True) as pipe:
                for row in rows:
                    pipe.xadd(self.stream, _entry_fields(row.id, row.type, row.envelope))
                await pipe.execute()
            # `= ANY(array)`, not IN (...): an IN list is a different statement for every batch size, and each
            # would be prepared anew and crowd the connection's statement cache.
            await session.execute(
                update(outbox)
                .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))))
                .values(published_at=func.now()),
                {"ids": [row.id for row in rows]},
            )
        self.stats.published += len(rows)
        self.stats.batches += 1
        return len(rows)

    async def delete_published(self, older_than: timedelta | None = None) -> int:
        """Delete rows published more than `older_than` (default: the retention) ago; returns the count."""
        age = self.retention if older_than is None else older_than
        outbox = self._outbox
        total = 0
        while True:
            async with self._sessionmaker() as session, session.begin():
                expired = (
                    select(outbox.c.id)
                    .where(outbox.c.published_at.is_not(None), outbox.c.published_at < func.now() - age)
                    .limit(CLEANUP_BATCH_SIZE)
                    .with_for_update(skip_locked=True)
                    .scalar_subquery()
                )
                result = await session.execute(delete(outbox).where(outbox.c.id.in_(expired)))
            deleted = cast("CursorResult[Any]", result).rowcount
            total += deleted
            if deleted < CLEANUP_BATCH_SIZE:
                break
        self.stats.cleaned += total
        return total

    async def run(self) -> None:
        """Publish until cancelled or stopped: straight on while batches come back full, `linger` seconds after a
        part batch, a poll interval (cut short by `wake()`) when there was nothing."""
        backoff = Backoff(FAILURE_BACKOFF_BASE_SECONDS, FAILURE_BACKOFF_CAP_SECONDS)
        next_cleanup = time.monotonic()
        while not self._stopping.is_set():
            raise_if_cancel_requested()
            # Cleared before the work, so a wake() that arrives during a batch cuts the next sleep short.
            self._wake.clear()
            if time.monotonic() >= next_cleanup:
                next_cleanup = time.monotonic() + self.cleanup_interval
                await self._delete_published_logged()
            try:
                published = await self.publish_batch()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.failures += 1
                delay = backoff.next_delay()
                logger.exception("outbox relay %s -> %s failed; retrying in %.1f s", self.schema, self.stream, delay)
                await wait_event(self._stopping, delay)
                continue
            if published == 0:
                await wait_event(self._wake, self.poll_interval)
            elif published < self.batch_size:
                # The outbox is drained. Under a steady flow of commits, going straight on would publish a row or
                # two per claim (four round trips); lingering a moment lets the next batch fill up.
                await wait_event(self._stopping, self.linger)

    async def _delete_published_logged(self) -> None:
        # A failed cleanup must not hold up publishing; the next interval tries again.
        try:
            deleted = await self.delete_published()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.failures += 1
            logger.exception("outbox cleanup of %s failed", self.schema)
            return
        if deleted:
            logger.info("deleted %d published outbox rows of %s", deleted, self.schema)


def unpublished_row_query(schema: str) -> Select[Any]:
    """The oldest unpublished row of `schema`'s outbox, if any: ordered as the partial index of unpublished rows
    is, so PostgreSQL reads that index whatever its statistics say (filtering the table instead would read every
    row published in the retention window when none is waiting)."""
    outbox = outbox_table(schema)
    return (
        select(literal_column("1"))
        .select_from(outbox)
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.created_at)
        .limit(literal_column("1"))
    )


def _entry_fields(event_id: Any, event_type: str, envelope: str) -> dict[FieldT, EncodableT]:
    return {FIELD_ID: str(event_id), FIELD_TYPE: event_type, FIELD_EVENT: envelope}
