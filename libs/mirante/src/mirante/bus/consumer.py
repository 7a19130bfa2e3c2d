"""Reliable stream consumers: consumer groups, an inbox for dedupe, ack after commit, reclaim, dead letters.

Delivery is at least once. The entries of one read (`XREADGROUP` or `XAUTOCLAIM`) are applied in one
database transaction, committed once: their `(group, event id)` rows go into the service's inbox with one
statement, and an event whose row already existed was handled before and is skipped. Each new event's
handler runs in its own savepoint: a handler that raises rolls back only its savepoint and its inbox row,
so its entry stays pending and is retried while the rest of the batch goes through. Only after the commit
are the entries acknowledged, with one `XACK` per stream: a crash before that leaves them pending, another
member of the group takes them over with `XAUTOCLAIM` once they have been idle for `min_idle_ms`, and the
inbox skips what had already been committed. When the batch transaction as a whole fails (its commit, or a
handler that broke the transaction), its entries are applied again one transaction each, so one poison
entry cannot hold the others back.

A new group starts at the end of each stream (`$`): it sees the events published from then on. Pass
`start_from="0"` to have it read each stream from the beginning. An existing group keeps its position.

Poison entries (not a valid envelope, or delivered more than `max_deliveries` times) are copied to the
dead-letter stream first and acknowledged after, so a crash in between duplicates a dead letter instead
of losing the entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
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
from sqlalchemy import (
    ARRAY,
    CursorResult,
    Delete,
    String,
    Table,
    bindparam,
    column,
    delete,
    func,
    select,
)
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from mirante.aio import wait_event
from mirante.bus.envelope import Event, InvalidEventError
from mirante.bus.tables import inbox_table
from mirante.web.request_id import bind_request_id

logger = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
"""`await handler(session, event)`: apply the event in the consumer's transaction (flush, never commit).

The transaction holds a whole batch, so a handler must leave it as it found it: no `commit()`, no
`rollback()`, no savepoint left open. It may raise; that undoes its own work only."""

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
_COMMIT_ALLOWED = "mirante.bus.consumer.commit_allowed"


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


class HandlerCommitError(RuntimeError):
    """A handler tried to commit the consumer's transaction, which also holds the rest of its batch."""


class _TransactionBrokenError(RuntimeError):
    """A handler ended or replaced the batch transaction or its own savepoint; nothing of it may commit."""


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
    batch_fallbacks: int = 0
    """Batches whose transaction failed as a whole and were applied again one entry at a time."""

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


@dataclass(frozen=True)
class _Delivery:
    entry: _Entry
    deliveries: int


@dataclass(frozen=True)
class _Applicable:
    """A delivery that carries a valid event under the delivery limit: it goes through the inbox and handler."""

    delivery: _Delivery
    event: Event

    @property
    def entry(self) -> _Entry:
        return self.delivery.entry


class StreamConsumer:
    """One member (`consumer_name`) of consumer group `group` reading `streams`; `run()` until stopped.

    Give each process a stable `consumer_name` so that after a restart it finishes its own pending entries
    first; entries of a member that never returns are reclaimed by the others after `min_idle_ms`. An
    entry is acknowledged only when its whole batch is done, so `min_idle_ms` must exceed the longest
    legitimate run of a batch (`batch_size` handlers), not just of one handler.

    Each handler that writes gets a subtransaction id from its savepoint. PostgreSQL keeps at most 64 of a
    transaction's subtransaction ids in shared memory; beyond that, other sessions' snapshots have to look
    them up in `pg_subtrans`, which slows the whole server down. Keep `batch_size` at most 64 when handlers
    write (the default is 50).
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
        self._record_events = _inbox_insert(self._inbox)
        self._forget_event = _inbox_delete(self._inbox)
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
        """Wait up to `block_ms` for entries never delivered to the group and handle them as one batch."""
        response = await self._redis.xreadgroup(
            self.group,
            self.consumer_name,
            dict.fromkeys(self.streams, ">"),
            count=self.batch_size,
            block=self.block_ms,
        )
        deliveries = [_Delivery(entry, _FIRST_DELIVERY) for batch in _entries_by_stream(response) for entry in batch]
        return len(await self._handle_batch(deliveries))

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
        """Handle one entry delivered `deliveries` times, as a batch of one: dead-letter, skip as duplicate,
        or apply, commit and acknowledge."""
        [outcome] = await self._handle_batch([_Delivery(_Entry(stream, entry_id, fields), deliveries)])
        return outcome

    async def _handle_batch(self, deliveries: Sequence[_Delivery]) -> list[Outcome]:
        """Screen out the entries that never reach a handler, apply the rest in one transaction, then ack."""
        outcomes: dict[int, Outcome] = {}
        applicable: dict[int, _Applicable] = {}
        for position, delivery in enumerate(deliveries):
            screened = await self._screen(delivery)
            if isinstance(screened, Outcome):
                self.stats.count(screened)
                outcomes[position] = screened
            else:
                applicable[position] = screened
        applied = await self._apply(list(applicable.values()))
        done = [
            item.entry
            for item, outcome in zip(applicable.values(), applied, strict=True)
            if outcome is not Outcome.FAILED
        ]
        await self._acknowledge_all(done)
        for position, item, outcome in zip(applicable, applicable.values(), applied, strict=True):
            outcomes[position] = outcome
            if outcome is Outcome.FAILED:
                continue
            self._last_errors.pop((item.entry.stream, item.entry.entry_id), None)
            self.stats.count(outcome)
            if outcome is Outcome.DUPLICATE:
                logger.info(
                    "event %s (%s) was already handled by %s; skipped", item.event.id, item.event.type, self.group
                )
            else:
                logger.debug("handled event %s (%s) from %s", item.event.id, item.event.type, item.entry.stream)
        return [outcomes[position] for position in sorted(outcomes)]

    async def _screen(self, delivery: _Delivery) -> Outcome | _Applicable:
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
            return _Applicable(delivery, event)
        bind_request_id(event.id)
        try:
            return await self._give_up(delivery, event)
        finally:
            bind_request_id(None)

    async def _give_up(self, delivery: _Delivery, event: Event) -> Outcome:
        # The effect may have been committed on an earlier delivery whose ack was lost: that is no poison.
        if await self._already_handled(event):
            await self._acknowledge(delivery.entry.stream, [delivery.entry.entry_id])
            return Outcome.DUPLICATE
        detail = f"delivered {delivery.deliveries} times; the limit is {self.max_deliveries}"
        await self._dead_letter(delivery, DeadLetterReason.MAX_DELIVERIES_EXCEEDED, detail, event)
        return Outcome.DEAD_LETTERED

    async def _apply(self, items: Sequence[_Applicable]) -> list[Outcome]:
        """Outcomes of `items` (PROCESSED, DUPLICATE or FAILED), committed: as one batch, else one by one."""
        if not items:
            return []
        failed: set[int] = set()
        try:
            return await self._apply_in_one_transaction(items, failed)
        except Exception as error:
            if len(items) == 1:
                if not failed:
                    self._record_failure(items[0], error)
                return [Outcome.FAILED]
            self.stats.batch_fallbacks += 1
            logger.warning(
                "the transaction of a batch of %d entries failed (%s: %s); applying them one at a time",
                len(items),
                type(error).__name__,
                error,
            )
        # Entries whose handler already failed cleanly inside the batch stay failed: running them again now
        # would not count as a delivery, and they are retried after `min_idle_ms` like any failure.
        outcomes = []
        for position, item in enumerate(items):
            if position in failed:
                outcomes.append(Outcome.FAILED)
            else:
                outcomes.extend(await self._apply([item]))
        return outcomes

    async def _apply_in_one_transaction(self, items: Sequence[_Applicable], failed: set[int]) -> list[Outcome]:
        """Apply `items` in one transaction and commit it; positions of handlers that failed go to `failed`.

        Raises when the transaction cannot commit; then nothing of it is kept.
        """
        async with self._sessionmaker() as session:
            _refuse_commits_by_handlers(session)
            async with session.begin():
                new_events = await self._record_in_inbox(session, [item.event for item in items])
                forgotten: set[uuid.UUID] = set()
                outcomes = []
                for position, item in enumerate(items):
                    event_id = item.event.event_uuid
                    if event_id in forgotten:
                        # An earlier copy of this event in the batch failed and took its inbox row back.
                        forgotten.discard(event_id)
                        first_time = bool(await self._record_in_inbox(session, [item.event]))
                    else:
                        first_time = event_id in new_events
                        new_events.discard(event_id)
                    if not first_time:
                        outcomes.append(Outcome.DUPLICATE)
                        continue
                    error = await self._run_handler(session, item.event)
                    if error is None:
                        outcomes.append(Outcome.PROCESSED)
                        continue
                    await session.execute(self._forget_event, {"group": self.group, "event_id": event_id})
                    forgotten.add(event_id)
                    self._record_failure(item, error)
                    failed.add(position)
                    outcomes.append(Outcome.FAILED)
                session.info[_COMMIT_ALLOWED] = True
        return outcomes

    async def _run_handler(self, session: AsyncSession, event: Event) -> Exception | None:
        """Run the handler in a savepoint; returns its error after rolling the savepoint back, or None.

        Raises `_TransactionBrokenError` when the handler ended the savepoint or the transaction itself.
        """
        bind_request_id(event.id)
        try:
            savepoint = await session.begin_nested()
            try:
                await self._handler(session, event)
                _check_savepoint_kept(session, savepoint, None)
                # Releasing the savepoint flushes the handler's pending objects: a failing flush lands below
                # and counts as this handler's failure.
                await savepoint.commit()
            except _TransactionBrokenError:
                raise
            except Exception as error:
                _check_savepoint_kept(session, savepoint, error)
                await savepoint.rollback()
                return error
            return None
        finally:
            bind_request_id(None)

    async def _record_in_inbox(self, session: AsyncSession, events: Sequence[Event]) -> set[uuid.UUID]:
        """Insert the inbox rows of `events` in one statement; returns the ids that were not there yet."""
        types = {event.event_uuid: event.type for event in events}
        # Sorted, so concurrent batches lock overlapping inbox keys in the same order and cannot deadlock.
        ids = sorted(types)
        inserted = await session.execute(
            self._record_events, {"group": self.group, "ids": ids, "types": [types[key] for key in ids]}
        )
        return set(inserted.scalars())

    async def _already_handled(self, event: Event) -> bool:
        inbox = self._inbox
        async with self._sessionmaker() as session:
            found = await session.execute(
                select(inbox.c.event_id).where(inbox.c.consumer == self.group, inbox.c.event_id == event.event_uuid)
            )
            return found.first() is not None

    async def _acknowledge_all(self, entries: Sequence[_Entry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        for stream, entry_ids in by_stream.items():
            await self._acknowledge(stream, entry_ids)

    async def _acknowledge(self, stream: str, entry_ids: Sequence[str]) -> None:
        await self._redis.xack(stream, self.group, *entry_ids)

    def _record_failure(self, item: _Applicable, error: Exception) -> None:
        entry, event = item.entry, item.event
        self._remember_error(entry.stream, entry.entry_id, error)
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
        self, delivery: _Delivery, reason: DeadLetterReason, detail: str, event: Event | None = None
    ) -> None:
        stream, entry_id = delivery.entry.stream, delivery.entry.entry_id
        letter: dict[FieldT, EncodableT] = {
            "reason": reason.value,
            "detail": detail,
            "stream": stream,
            "entry_id": entry_id,
            "group": self.group,
            "consumer": self.consumer_name,
            "deliveries": delivery.deliveries,
            "dead_at": datetime.now(UTC).isoformat(),
        }
        if event is not None:
            letter["event_id"] = event.id
            letter["event_type"] = event.type
        last_error = self._last_errors.pop((stream, entry_id), None)
        if last_error is not None:
            letter["last_error"] = last_error
        for name, value in delivery.entry.fields.items():
            letter[_prefixed("original.", name)] = value
        # Copy first, ack second: a crash in between duplicates the dead letter instead of losing the entry.
        await self._redis.xadd(self.dead_letter_stream, letter)
        await self._acknowledge(stream, [entry_id])
        logger.warning("entry %s of %s moved to %s (%s: %s)", entry_id, stream, self.dead_letter_stream, reason, detail)

    async def _handle_redelivered(self, stream: str, entries: Sequence[_Entry]) -> int:
        if not entries:
            return 0
        counts = await self._delivery_counts(stream, [entry.entry_id for entry in entries])
        # An entry no longer in the PEL was taken by another member meanwhile; the inbox absorbs that.
        deliveries = [_Delivery(entry, counts.get(entry.entry_id, _FIRST_DELIVERY)) for entry in entries]
        return len(await self._handle_batch(deliveries))

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
        await wait_event(self._stopping, delay)
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


def _inbox_insert(inbox: Table) -> ReturningInsert[uuid.UUID]:
    """`INSERT ... SELECT FROM unnest(ids, types) ON CONFLICT DO NOTHING RETURNING event_id`: one statement
    for a whole batch whatever its size, answering which events are new."""
    rows = (
        func.unnest(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))), bindparam("types", type_=ARRAY(String)))
        .table_valued(column("event_id", UUID(as_uuid=True)), column("event_type", String))
        .render_derived()
    )
    return (
        insert(inbox)
        .from_select(
            ["consumer", "event_id", "event_type"],
            select(bindparam("group", type_=String), rows.c.event_id, rows.c.event_type),
        )
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )


def _inbox_delete(inbox: Table) -> Delete:
    return delete(inbox).where(inbox.c.consumer == bindparam("group"), inbox.c.event_id == bindparam("event_id"))


def _refuse_commits_by_handlers(session: AsyncSession) -> None:
    """Make a handler's `commit()` raise `HandlerCommitError`: it would also commit the inbox rows of the
    batch entries not handled yet, which would then be skipped as duplicates and never applied."""

    def refuse_unless_allowed(sync_session: Session) -> None:
        # Releasing a savepoint fires this event too; only the end of the whole transaction is refused.
        if sync_session.in_nested_transaction() or sync_session.info.get(_COMMIT_ALLOWED):
            return
        raise HandlerCommitError("a handler must not commit: the consumer commits the whole batch")

    sqlalchemy_event.listen(session.sync_session, "before_commit", refuse_unless_allowed)


def _check_savepoint_kept(
    session: AsyncSession, savepoint: AsyncSessionTransaction, handler_error: Exception | None
) -> None:
    if session.sync_session.get_nested_transaction() is savepoint.sync_transaction:
        return
    problem = "the handler ended its savepoint or the transaction, or left a savepoint of its own open"
    if handler_error is not None:
        problem += f" ({type(handler_error).__name__}: {handler_error})"
    raise _TransactionBrokenError(problem) from handler_error


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
