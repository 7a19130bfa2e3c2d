"""Reliable stream consumers: consumer groups, an inbox for dedupe, ack after commit, reclaim, dead letters.

Delivery is at least once, so each event runs through one database transaction that first records
`(group, event id)` in the service's inbox; when that row already exists the event was handled before and
is skipped. Otherwise the handler runs in the same transaction. Only after the commit is the entry
acknowledged (`XACK`): a crash before that leaves it pending, and another consumer of the group takes it
over with `XAUTOCLAIM` once it has been idle for `min_idle_ms`.

A new group starts at the end of each stream (`$`): it sees the events published from then on. Pass
`start_from="0"` to have it read each stream from the beginning. An existing group keeps its position.

Poison entries (not a valid envelope, or delivered more than `max_deliveries` times) are copied to the
dead-letter stream first and acknowledged after, so a crash in between duplicates a dead letter instead
of losing the entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT
from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.bus.envelope import Event, InvalidEventError
from mirante.bus.tables import inbox_table
from mirante.web.request_id import bind_request_id

logger = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
"""`await handler(session, event)`: apply the event in the consumer's transaction (flush, never commit)."""

EntryFields = Mapping[Any, Any]
"""The field map of a stream entry as redis-py returns it (bytes or str keys and values)."""

DEAD_LETTER_STREAM = "events:dead"
START_NEW = "$"
START_BEGINNING = "0"

DEFAULT_BATCH_SIZE = 50
DEFAULT_BLOCK_MS = 2_000
DEFAULT_MIN_IDLE_MS = 60_000
DEFAULT_MAX_DELIVERIES = 5
MAX_GROUP_NAME_LENGTH = 200
MAX_REMEMBERED_ERRORS = 1_000
MAX_ERROR_TEXT = 2_000
FAILURE_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0)
_FIRST_DELIVERY = 1
_CURSOR_DONE = "0-0"


class DeadLetterReason(StrEnum):
    INVALID_ENVELOPE = "invalid_envelope"
    MAX_DELIVERIES_EXCEEDED = "max_deliveries_exceeded"


class Outcome(StrEnum):
    """What happened to one stream entry."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    MISSING = "missing"
    """The entry was deleted from the stream while pending; it is acknowledged and dropped."""


@dataclass
class ConsumerStats:
    """Running totals, in a shape that maps directly onto Prometheus counters."""

    processed: int = 0
    duplicates: int = 0
    failures: int = 0
    dead_lettered: int = 0
    missing: int = 0
    reclaimed: int = 0
    loop_errors: int = 0

    def count(self, outcome: Outcome) -> None:
        match outcome:
            case Outcome.PROCESSED:
                self.processed += 1
            case Outcome.DUPLICATE:
                self.duplicates += 1
            case Outcome.FAILED:
                self.failures += 1
            case Outcome.DEAD_LETTERED:
                self.dead_lettered += 1
            case Outcome.MISSING:
                self.missing += 1


@dataclass(frozen=True)
class _Entry:
    stream: str
    entry_id: str
    fields: EntryFields


class StreamConsumer:
    """One member (`consumer_name`) of consumer group `group` reading `streams`; `run()` until stopped.

    Give each process a stable `consumer_name` so that after a restart it finishes its own pending entries
    first; entries of a member that never returns are reclaimed by the others after `min_idle_ms`, which
    must exceed the longest legitimate handler run.
    """

    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        streams: str | Sequence[str],
        group: str,
        consumer_name: str,
        handler: Handler,
        schema_for_inbox: str,
        *,
        start_from: str = START_NEW,
        batch_size: int = DEFAULT_BATCH_SIZE,
        block_ms: int = DEFAULT_BLOCK_MS,
        min_idle_ms: int = DEFAULT_MIN_IDLE_MS,
        reclaim_interval: float | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        dead_letter_stream: str = DEAD_LETTER_STREAM,
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
        self._handler = handler
        self._inbox = inbox_table(schema_for_inbox)
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
        self.stats = ConsumerStats()
        self._stopping = asyncio.Event()
        self._last_errors: OrderedDict[tuple[str, str], str] = OrderedDict()

    def stop(self) -> None:
        """Ask `run()` to return after the entry in progress (at most one BLOCK later when idle).

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
        failures = 0
        next_reclaim = time.monotonic()
        while not self.stopping:
            try:
                if not started:
                    await self.ensure_groups()
                    await self.process_own_pending()
                    started = True
                if time.monotonic() >= next_reclaim:
                    await self.reclaim_idle()
                    next_reclaim = time.monotonic() + self.reclaim_interval
                await self.read_new()
                failures = 0
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
                failures = await self._back_off(failures)
            except Exception:
                failures = await self._back_off(failures)

    async def process_own_pending(self) -> int:
        """Handle the entries delivered to this member but never acknowledged (read from id `0`)."""
        handled = 0
        for stream in self.streams:
            cursor = START_BEGINNING
            while not self.stopping:
                response = await self._redis.xreadgroup(
                    self.group, self.consumer_name, {stream: cursor}, count=self.batch_size
                )
                entries = [entry for batch in _entries_by_stream(response) for entry in batch]
                if not entries:
                    break
                handled += await self._handle_redelivered(stream, entries)
                cursor = entries[-1].entry_id
        return handled

    async def read_new(self) -> int:
        """Wait up to `block_ms` for entries never delivered to the group and handle them."""
        response = await self._redis.xreadgroup(
            self.group,
            self.consumer_name,
            dict.fromkeys(self.streams, ">"),
            count=self.batch_size,
            block=self.block_ms,
        )
        handled = 0
        for batch in _entries_by_stream(response):
            for entry in batch:
                if self.stopping:
                    return handled
                await self.handle_entry(entry.stream, entry.entry_id, entry.fields, _FIRST_DELIVERY)
                handled += 1
        return handled

    async def reclaim_idle(self) -> int:
        """Take over entries idle for `min_idle_ms` (any member's, this one's failed ones too) and handle
        them; follows the `XAUTOCLAIM` cursor until it wraps to `0-0`."""
        handled = 0
        for stream in self.streams:
            cursor = _CURSOR_DONE
            while not self.stopping:
                response: Any = await self._redis.xautoclaim(
                    stream, self.group, self.consumer_name, self.min_idle_ms, cursor, count=self.batch_size
                )
                cursor = _text(response[0])
                # Redis 6.2 answers a deleted entry with nil (no id); Redis 7 drops it from the PEL itself.
                entries = [
                    _Entry(stream, _text(entry_id), fields or {})
                    for entry_id, fields in response[1]
                    if entry_id is not None
                ]
                self.stats.reclaimed += len(entries)
                handled += await self._handle_redelivered(stream, entries)
                if cursor == _CURSOR_DONE:
                    break
        return handled

    async def handle_entry(self, stream: str, entry_id: str, fields: EntryFields, deliveries: int) -> Outcome:
        """Handle one entry delivered `deliveries` times: dead-letter, skip as duplicate, or apply and ack."""
        outcome = await self._handle(stream, entry_id, fields, deliveries)
        self.stats.count(outcome)
        return outcome

    async def _handle(self, stream: str, entry_id: str, fields: EntryFields, deliveries: int) -> Outcome:
        if not fields:
            await self._acknowledge(stream, entry_id)
            logger.warning("entry %s of %s was deleted while pending; dropped", entry_id, stream)
            return Outcome.MISSING
        try:
            event = Event.from_fields(fields)
        except InvalidEventError as error:
            await self._dead_letter(
                stream, entry_id, fields, deliveries, DeadLetterReason.INVALID_ENVELOPE, error.reason
            )
            return Outcome.DEAD_LETTERED
        bind_request_id(event.id)
        try:
            if deliveries > self.max_deliveries:
                return await self._give_up(stream, entry_id, fields, deliveries, event)
            return await self._apply(stream, entry_id, deliveries, event)
        finally:
            bind_request_id(None)

    async def _apply(self, stream: str, entry_id: str, deliveries: int, event: Event) -> Outcome:
        try:
            async with self._sessionmaker() as session, session.begin():
                first_time = await self._record_in_inbox(session, event)
                if first_time:
                    await self._handler(session, event)
        except Exception as error:
            self._remember_error(stream, entry_id, error)
            logger.exception(
                "handling event %s (%s, entry %s of %s, delivery %d) failed; it stays pending and is "
                "retried after %d ms",
                event.id,
                event.type,
                entry_id,
                stream,
                deliveries,
                self.min_idle_ms,
            )
            return Outcome.FAILED
        await self._acknowledge(stream, entry_id)
        self._last_errors.pop((stream, entry_id), None)
        if not first_time:
            logger.info("event %s (%s) was already handled by %s; skipped", event.id, event.type, self.group)
            return Outcome.DUPLICATE
        logger.debug("handled event %s (%s) from %s", event.id, event.type, stream)
        return Outcome.PROCESSED

    async def _give_up(self, stream: str, entry_id: str, fields: EntryFields, deliveries: int, event: Event) -> Outcome:
        # The effect may have been committed on an earlier delivery whose ack was lost: that is no poison.
        if await self._already_handled(event):
            await self._acknowledge(stream, entry_id)
            return Outcome.DUPLICATE
        detail = f"delivered {deliveries} times; the limit is {self.max_deliveries}"
        await self._dead_letter(
            stream, entry_id, fields, deliveries, DeadLetterReason.MAX_DELIVERIES_EXCEEDED, detail, event
        )
        return Outcome.DEAD_LETTERED

    async def _record_in_inbox(self, session: AsyncSession, event: Event) -> bool:
        inbox = self._inbox
        inserted = await session.execute(
            insert(inbox)
            .values(consumer=self.group, event_id=event.event_uuid, event_type=event.type)
            .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
            .returning(inbox.c.event_id)
        )
        return inserted.first() is not None

    async def _already_handled(self, event: Event) -> bool:
        inbox = self._inbox
        async with self._sessionmaker() as session:
            found = await session.execute(
                select(inbox.c.event_id).where(inbox.c.consumer == self.group, inbox.c.event_id == event.event_uuid)
            )
            return found.first() is not None

    async def _acknowledge(self, stream: str, entry_id: str) -> None:
        await self._redis.xack(stream, self.group, entry_id)

    async def _dead_letter(
        self,
        stream: str,
        entry_id: str,
        fields: EntryFields,
        deliveries: int,
        reason: DeadLetterReason,
        detail: str,
        event: Event | None = None,
    ) -> None:
        letter: dict[FieldT, EncodableT] = {
            "reason": reason.value,
            "detail": detail,
            "stream": stream,
            "entry_id": entry_id,
            "group": self.group,
            "consumer": self.consumer_name,
            "deliveries": deliveries,
            "dead_at": datetime.now(UTC).isoformat(),
        }
        if event is not None:
            letter["event_id"] = event.id
            letter["event_type"] = event.type
        last_error = self._last_errors.pop((stream, entry_id), None)
        if last_error is not None:
            letter["last_error"] = last_error
        for name, value in fields.items():
            letter[_prefixed("original.", name)] = value
        # Copy first, ack second: a crash in between duplicates the dead letter instead of losing the entry.
        await self._redis.xadd(self.dead_letter_stream, letter)
        await self._acknowledge(stream, entry_id)
        logger.warning("entry %s of %s moved to %s (%s: %s)", entry_id, stream, self.dead_letter_stream, reason, detail)

    async def _handle_redelivered(self, stream: str, entries: Sequence[_Entry]) -> int:
        if not entries:
            return 0
        deliveries = await self._delivery_counts(stream, [entry.entry_id for entry in entries])
        handled = 0
        for entry in entries:
            if self.stopping:
                break
            # An entry no longer in the PEL was taken by another member meanwhile; the inbox absorbs that.
            count = deliveries.get(entry.entry_id, _FIRST_DELIVERY)
            await self.handle_entry(entry.stream, entry.entry_id, entry.fields, count)
            handled += 1
        return handled

    async def _delivery_counts(self, stream: str, entry_ids: Sequence[str]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
            replies: list[Any] = await pipe.execute()
        counts: dict[str, int] = {}
        for reply in replies:
            for pending in reply:
                counts[_text(pending["message_id"])] = int(pending["times_delivered"])
        return counts

    def _remember_error(self, stream: str, entry_id: str, error: Exception) -> None:
        self._last_errors[(stream, entry_id)] = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
        self._last_errors.move_to_end((stream, entry_id))
        while len(self._last_errors) > MAX_REMEMBERED_ERRORS:
            self._last_errors.popitem(last=False)

    async def _back_off(self, failures: int) -> int:
        self.stats.loop_errors += 1
        delay = FAILURE_BACKOFF_SECONDS[min(failures, len(FAILURE_BACKOFF_SECONDS) - 1)]
        logger.exception("consumer %s/%s failed; retrying in %.1f s", self.group, self.consumer_name, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        return failures + 1


async def delete_old_inbox_rows(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, older_than: timedelta
) -> int:
    """Forget events handled more than `older_than` ago; returns how many inbox rows were deleted.

    The inbox only needs to outlive redeliveries: keep `older_than` well above the longest a message can
    stay pending (consumer outages included), since an event redelivered after its row is gone runs again.
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    inbox = inbox_table(schema)
    async with sessionmaker() as session, session.begin():
        result = await session.execute(delete(inbox).where(inbox.c.processed_at < func.now() - older_than))
    return cast("CursorResult[Any]", result).rowcount


def _check_block_below_socket_timeout(redis: Redis, block_ms: int) -> None:
    # redis-py raises TimeoutError when BLOCK outlasts the socket timeout, which would kill a naive loop.
    socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
    if socket_timeout is not None and block_ms / 1000 >= float(socket_timeout):
        raise ValueError(
            f"block_ms ({block_ms}) must stay below the Redis client's socket timeout ({socket_timeout} s)"
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _prefixed(prefix: str, name: bytes | str) -> bytes | str:
    return prefix.encode() + name if isinstance(name, bytes) else prefix + name


def _entries_by_stream(response: Any) -> list[list[_Entry]]:
    """Entries of an XREADGROUP reply, grouped per stream (RESP2 list or RESP3 map)."""
    if not response:
        return []
    pairs = response.items() if isinstance(response, Mapping) else response
    grouped = []
    for stream, entries in pairs:
        # RESP3 nests the entry list once more.
        flat = entries[0] if entries and isinstance(entries[0], list) else entries
        grouped.append([_Entry(_text(stream), _text(entry_id), fields or {}) for entry_id, fields in flat])
    return grouped
