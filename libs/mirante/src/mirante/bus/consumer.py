"""The stream consumer loop: consumer groups, an inbox for dedupe, ack after commit, reclaim, dead letters.

Delivery is at least once. The entries of one read (`XREADGROUP` or `XAUTOCLAIM`) are applied in one
database transaction, committed once: their `(group, event id)` rows go into the service's inbox with one
statement, and an event whose row already existed was handled before and is skipped. Each new event's
handler runs in its own savepoint: a handler that raises rolls back only its savepoint and its inbox row,
so its entry stays pending and is retried while the rest of the batch goes through. Only after the commit
are the entries acknowledged, with one `XACK` per stream: a crash before that leaves them pending, another
member of the group takes them over with `XAUTOCLAIM` once they have been idle for `min_idle_ms`, and the
inbox skips what had already been committed. When the batch transaction as a whole fails (its commit, or a
handler that broke the transaction), its entries are applied again one transaction each, so one poison
entry cannot hold the others back. A `BatchHandler` gets all the new events of a batch in one call instead,
without savepoints; when it raises, the batch is applied one event per transaction in the same way.

A new group starts at the end of each stream (`$`): it sees the events published from then on. Pass
`start_from="0"` to have it read each stream from the beginning. An existing group keeps its position.

Poison entries (not a valid envelope, or delivered more than `max_deliveries` times) are copied to the
dead-letter stream first and acknowledged after, so a crash in between duplicates a dead letter instead
of losing the entry.

A consumer given `wanted_types` (see `interest`) asks it once per batch which event types its handler needs; an
entry of another type (its `type` field) is acknowledged with the batch, its envelope not even parsed, without an
inbox row or a savepoint (outcome `SKIPPED`).

The parts live beside this module: `stream_entries` (reading replies), `inbox` (dedupe), `handlers` (a handler
in its savepoint), `batch_transaction` (a batch in one transaction, or one by one), `interest` (wanted types),
`dead_letters`, `outcomes`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Container, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.aio import raise_if_cancel_requested, wait_event
from mirante.backoff import Backoff
from mirante.bus.batch_transaction import Applicable, BatchApplier
from mirante.bus.dead_letters import DEAD_LETTER_STREAM, DeadLetterReason, RecentErrors, dead_letter_fields
from mirante.bus.envelope import Event, InvalidEventError
from mirante.bus.handlers import BatchHandler, Handler
from mirante.bus.inbox import Inbox
from mirante.bus.interest import WantedTypes
from mirante.bus.outcomes import ConsumerStats, Outcome
from mirante.bus.stream_entries import (
    CURSOR_DONE,
    FIRST_DELIVERY,
    Delivery,
    Entry,
    EntryFields,
    claimed_entries,
    delivery_counts,
    entries_by_stream,
    entry_type,
)
from mirante.web.request_id import bind_request_id

logger = logging.getLogger(__name__)

START_NEW = "$"
START_BEGINNING = "0"

DEFAULT_BATCH_SIZE = 50
DEFAULT_BLOCK_MS = 2_000
DEFAULT_MIN_IDLE_MS = 60_000
DEFAULT_MAX_DELIVERIES = 5
MAX_GROUP_NAME_LENGTH = 200
FAILURE_BACKOFF_BASE_SECONDS = 0.5
FAILURE_BACKOFF_CAP_SECONDS = 5.0


class StreamConsumer:
    """One member (`consumer_name`) of consumer group `group` reading `streams`; `run()` until stopped.

    Give each process a stable `consumer_name` so that after a restart it finishes its own pending entries
    first; entries of a member that never returns are reclaimed by the others after `min_idle_ms`. An
    entry is acknowledged only when its whole batch is done, so `min_idle_ms` must exceed the longest
    legitimate run of a batch (`batch_size` handlers), not just of one handler.

    Each handler that writes gets a subtransaction id from its savepoint. PostgreSQL keeps at most 64 of a
    transaction's subtransaction ids in shared memory; beyond that, other sessions' snapshots have to look
    them up in `pg_subtrans`, which slows the whole server down. Keep `batch_size` at most 64 when handlers
    write (the default is 50). A `BatchHandler` takes the new events of a batch in one call, with no
    savepoint: one for the whole batch only when it fails and the batch is applied one event at a time.

    `wanted_types` (see `mirante.bus.interest`) tells, per batch, which event types the handler needs; entries of
    other types cost no parsing and no database work. An entry skipped so is not in the inbox, so a later
    delivery of it (a reclaim) is judged again.
    """

    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        streams: str | Sequence[str],
        group: str,
        consumer_name: str,
        handler: Handler | BatchHandler,
        schema_for_inbox: str,
        *,
        start_from: str = START_NEW,
        batch_size: int = DEFAULT_BATCH_SIZE,
        block_ms: int = DEFAULT_BLOCK_MS,
        min_idle_ms: int = DEFAULT_MIN_IDLE_MS,
        reclaim_interval: float | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        dead_letter_stream: str = DEAD_LETTER_STREAM,
        wanted_types: WantedTypes | None = None,
    ) -> None:
        names = [streams] if isinstance(streams, str) else list(streams)
        if not names or not all(names) or len(set(names)) != len(names):
            raise ValueError("streams must be one or more distinct, non-empty stream names")
        if not group or len(group) > MAX_GROUP_NAME_LENGTH:
            raise ValueError(f"group must be a non-empty name of at most {MAX_GROUP_NAME_LENGTH} characters")
        if not consumer_name:
            raise ValueError("consumer_name must not be empty")
        if batch_size < 1 or block_ms < 1 or min_idle_ms < 1 or max_deliveries < 1:
            raise ValueError("batch_size, block_ms, min_idle_ms and max_deliveries must be at least 1")
        if reclaim_interval is not None and reclaim_interval <= 0:
            raise ValueError("reclaim_interval must be positive")
        if dead_letter_stream in names:
            raise ValueError("the dead-letter stream cannot be one of the consumed streams")
        _check_block_below_socket_timeout(redis, block_ms)
        self._redis = redis
        self._sessionmaker = sessionmaker
        self._inbox = Inbox(schema_for_inbox, group)
        self.streams = tuple(names)
        self.group = group
        self.consumer_name = consumer_name
        self.start_from = start_from
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.min_idle_ms = min_idle_ms
        self.reclaim_interval = reclaim_interval if reclaim_interval is not None else min_idle_ms / 1000
        self.max_deliveries = max_deliveries
        self.dead_letter_stream = dead_letter_stream
        self.wanted_types = wanted_types
        self.stats = ConsumerStats()
        self._stopping = asyncio.Event()
        self._last_errors = RecentErrors()
        self._applier = BatchApplier(sessionmaker, handler, self._inbox, self.stats, self._record_failure)

    def stop(self) -> None:
        """Ask `run()` to return after the batch in progress (at most one BLOCK later when idle).

        Entries already delivered but not handled stay pending: this member finishes them when it runs
        again, or another member reclaims them.
        """
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def ensure_groups(self) -> None:
        """Create the group on every stream (and the stream itself) unless it exists; never moves a group."""
        for stream in self.streams:
            try:
                await self._redis.xgroup_create(stream, self.group, id=self.start_from, mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def run(self) -> None:
        """Consume until `stop()` or cancellation: own pending entries first, then new ones, reclaiming
        idle entries of other members every `reclaim_interval` seconds. Redis or database outages are
        logged and retried with backoff."""
        started = False
        backoff = Backoff(FAILURE_BACKOFF_BASE_SECONDS, FAILURE_BACKOFF_CAP_SECONDS)
        next_reclaim = time.monotonic()
        while not self.stopping:
            raise_if_cancel_requested()
            try:
                if not started:
                    await self.ensure_groups()
                    await self.process_own_pending()
                    started = True
                if time.monotonic() >= next_reclaim:
                    await self.reclaim_idle()
                    next_reclaim = time.monotonic() + self.reclaim_interval
                await self.read_new()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except RedisTimeoutError:
                # Only a server stalling longer than the socket timeout gets here (BLOCK is kept below it).
                logger.warning("stream read timed out for group %s; reading again", self.group)
            except ResponseError as error:
                if "NOGROUP" in str(error):
                    logger.warning("group %s vanished (stream deleted?); creating it again", self.group)
                    started = False
                    continue
                await self._back_off(backoff)
            except Exception:
                await self._back_off(backoff)

    async def process_own_pending(self) -> int:
        """Handle the entries delivered to this member but never acknowledged (read from id `0`)."""
        handled = 0
        for stream in self.streams:
            cursor = START_BEGINNING
            while not self.stopping:
                response = await self._redis.xreadgroup(
                    self.group, self.consumer_name, {stream: cursor}, count=self.batch_size
                )
                entries = [entry for batch in entries_by_stream(response) for entry in batch]
                if not entries:
                    break
                handled += await self._handle_redelivered(stream, entries)
                cursor = entries[-1].entry_id
        return handled

    async def read_new(self) -> int:
        """Wait up to `block_ms` for entries never delivered to the group and handle them as one batch."""
        response = await self._redis.xreadgroup(
            self.group,
            self.consumer_name,
            dict.fromkeys(self.streams, ">"),
            count=self.batch_size,
            block=self.block_ms,
        )
        deliveries = [Delivery(entry, FIRST_DELIVERY) for batch in entries_by_stream(response) for entry in batch]
        return len(await self._handle_batch(deliveries))

    async def reclaim_idle(self) -> int:
        """Take over entries idle for `min_idle_ms` (any member's, this one's failed ones too) and handle
        them; follows the `XAUTOCLAIM` cursor until it wraps to `0-0`."""
        handled = 0
        for stream in self.streams:
            cursor = CURSOR_DONE
            while not self.stopping:
                response: Any = await self._redis.xautoclaim(
                    stream, self.group, self.consumer_name, self.min_idle_ms, cursor, count=self.batch_size
                )
                cursor, entries = claimed_entries(stream, response)
                self.stats.reclaimed += len(entries)
                handled += await self._handle_redelivered(stream, entries)
                if cursor == CURSOR_DONE:
                    break
        return handled

    async def handle_entry(self, stream: str, entry_id: str, fields: EntryFields, deliveries: int) -> Outcome:
        """Handle one entry delivered `deliveries` times, as a batch of one: dead-letter, skip as duplicate,
        or apply, commit and acknowledge."""
        [outcome] = await self._handle_batch([Delivery(Entry(stream, entry_id, fields), deliveries)])
        return outcome

    async def _handle_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Screen out the entries that never reach a handler (types not wanted among them), apply the rest in one
        transaction, then ack."""
        outcomes: dict[int, Outcome] = {}
        applicable: dict[int, Applicable] = {}
        skipped: list[Entry] = []
        wanted = await self._wanted_types() if deliveries else None
        for position, delivery in enumerate(deliveries):
            if wanted is not None and (kind := entry_type(delivery.entry.fields)) is not None and kind not in wanted:
                outcomes[position] = Outcome.SKIPPED
                skipped.append(delivery.entry)
                continue
            screened = await self._screen(delivery)
            if isinstance(screened, Outcome):
                self.stats.count(screened)
                outcomes[position] = screened
            else:
                applicable[position] = screened
        applied = await self._applier.apply(list(applicable.values()))
        done = [
            item.entry
            for item, outcome in zip(applicable.values(), applied, strict=True)
            if outcome is not Outcome.FAILED
        ]
        await self._acknowledge_all(done + skipped)
        for entry in skipped:
            self._last_errors.pop(entry.stream, entry.entry_id)
            self.stats.count(Outcome.SKIPPED)
        for position, item, outcome in zip(applicable, applicable.values(), applied, strict=True):
            outcomes[position] = outcome
            if outcome is Outcome.FAILED:
                continue
            self._last_errors.pop(item.entry.stream, item.entry.entry_id)
            self.stats.count(outcome)
            if outcome is Outcome.DUPLICATE:
                logger.info(
                    "event %s (%s) was already handled by %s; skipped", item.event.id, item.event.type, self.group
                )
            else:
                logger.debug("handled event %s (%s) from %s", item.event.id, item.event.type, item.entry.stream)
        return [outcomes[position] for position in sorted(outcomes)]

    async def _wanted_types(self) -> Container[str] | None:
        """The types the handler needs for this batch; None (all of them) without `wanted_types` or when it fails."""
        if self.wanted_types is None:
            return None
        try:
            return await self.wanted_types()
        except Exception as error:
            logger.warning(
                "the wanted types of %s could not be read (%s: %s); the whole batch goes to the handler",
                self.group,
                type(error).__name__,
                error,
            )
            return None

    async def _screen(self, delivery: Delivery) -> Outcome | Applicable:
        """The outcome of an entry that needs no handler (deleted, malformed, over the limit), else its event."""
        entry = delivery.entry
        if not entry.fields:
            await self._acknowledge(entry.stream, [entry.entry_id])
            logger.warning("entry %s of %s was deleted while pending; dropped", entry.entry_id, entry.stream)
            return Outcome.MISSING
        try:
            event = Event.from_fields(entry.fields)
        except InvalidEventError as error:
            await self._dead_letter(delivery, DeadLetterReason.INVALID_ENVELOPE, error.reason)
            return Outcome.DEAD_LETTERED
        if delivery.deliveries <= self.max_deliveries:
            return Applicable(delivery, event)
        bind_request_id(event.id)
        try:
            return await self._give_up(delivery, event)
        finally:
            bind_request_id(None)

    async def _give_up(self, delivery: Delivery, event: Event) -> Outcome:
        # The effect may have been committed on an earlier delivery whose ack was lost: that is no poison.
        if await self._inbox.contains(self._sessionmaker, event):
            await self._acknowledge(delivery.entry.stream, [delivery.entry.entry_id])
            return Outcome.DUPLICATE
        detail = f"delivered {delivery.deliveries} times; the limit is {self.max_deliveries}"
        await self._dead_letter(delivery, DeadLetterReason.MAX_DELIVERIES_EXCEEDED, detail, event)
        return Outcome.DEAD_LETTERED

    async def _acknowledge_all(self, entries: Sequence[Entry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        for stream, entry_ids in by_stream.items():
            await self._acknowledge(stream, entry_ids)

    async def _acknowledge(self, stream: str, entry_ids: Sequence[str]) -> None:
        await self._redis.xack(stream, self.group, *entry_ids)

    def _record_failure(self, item: Applicable, error: Exception) -> None:
        entry, event = item.entry, item.event
        self._last_errors.remember(entry.stream, entry.entry_id, error)
        self.stats.count(Outcome.FAILED)
        logger.error(
            "handling event %s (%s, entry %s of %s, delivery %d) failed; it stays pending and is retried after %d ms",
            event.id,
            event.type,
            entry.entry_id,
            entry.stream,
            item.delivery.deliveries,
            self.min_idle_ms,
            exc_info=error,
        )

    async def _dead_letter(
        self, delivery: Delivery, reason: DeadLetterReason, detail: str, event: Event | None = None
    ) -> None:
        stream, entry_id = delivery.entry.stream, delivery.entry.entry_id
        letter = dead_letter_fields(
            delivery,
            reason,
            detail,
            group=self.group,
            consumer=self.consumer_name,
            event=event,
            last_error=self._last_errors.pop(stream, entry_id),
        )
        # Copy first, ack second: a crash in between duplicates the dead letter instead of losing the entry.
        await self._redis.xadd(self.dead_letter_stream, letter)
        await self._acknowledge(stream, [entry_id])
        logger.warning("entry %s of %s moved to %s (%s: %s)", entry_id, stream, self.dead_letter_stream, reason, detail)

    async def _handle_redelivered(self, stream: str, entries: Sequence[Entry]) -> int:
        if not entries:
            return 0
        counts = await self._delivery_counts(stream, [entry.entry_id for entry in entries])
        # An entry no longer in the PEL was taken by another member meanwhile; the inbox absorbs that.
        deliveries = [Delivery(entry, counts.get(entry.entry_id, FIRST_DELIVERY)) for entry in entries]
        return len(await self._handle_batch(deliveries))

    async def _delivery_counts(self, stream: str, entry_ids: Sequence[str]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
            replies: list[Any] = await pipe.execute()
        return delivery_counts(replies)

    async def _back_off(self, backoff: Backoff) -> None:
        self.stats.loop_errors += 1
        delay = backoff.next_delay()
        logger.exception("consumer %s/%s failed; retrying in %.1f s", self.group, self.consumer_name, delay)
        await wait_event(self._stopping, delay)


def _check_block_below_socket_timeout(redis: Redis, block_ms: int) -> None:
    # redis-py raises TimeoutError when BLOCK outlasts the socket timeout, which would kill a naive loop.
    socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
    if socket_timeout is not None and block_ms / 1000 >= float(socket_timeout):
        raise ValueError(
            f"block_ms ({block_ms}) must stay below the Redis client's socket timeout ({socket_timeout} s)"
        )
