"""Applying a batch of events in one database transaction, and one by one when that transaction fails.

The batch's inbox rows go in with one statement; each new event's handler runs in its own savepoint, so a
handler that raises rolls back only its savepoint and its inbox row. When the transaction as a whole fails
(its commit, or a handler that broke it), the entries are applied again one transaction each, so one poison
entry cannot hold the others back. A `BatchHandler` takes all the new events in one call, without savepoints;
its failure fails the transaction, which is then applied one entry at a time the same way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.bus.envelope import Event
from mirante.bus.handlers import BatchHandler, Handler, allow_commit, refuse_commits_by_handlers, run_handler
from mirante.bus.inbox import Inbox
from mirante.bus.outcomes import ConsumerStats, Outcome
from mirante.bus.stream_entries import Delivery, Entry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applicable:
    """A delivery that carries a valid event under the delivery limit: it goes through the inbox and handler."""

    delivery: Delivery
    event: Event

    @property
    def entry(self) -> Entry:
        return self.delivery.entry


FailureRecorder = Callable[[Applicable, Exception], None]


class BatchApplier:
    """Applies batches for one consumer group; `record_failure` hears of every handler or transaction failure."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        handler: Handler | BatchHandler,
        inbox: Inbox,
        stats: ConsumerStats,
        record_failure: FailureRecorder,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._handler = handler
        self._inbox = inbox
        self._stats = stats
        self._record_failure = record_failure

    async def apply(self, items: Sequence[Applicable]) -> list[Outcome]:
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
            self._stats.batch_fallbacks += 1
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
                outcomes.extend(await self.apply([item]))
        return outcomes

    async def _apply_in_one_transaction(self, items: Sequence[Applicable], failed: set[int]) -> list[Outcome]:
        """Apply `items` in one transaction and commit it; positions of handlers that failed go to `failed`.

        Raises when the transaction cannot commit; then nothing of it is kept.
        """
        async with self._sessionmaker() as session:
            refuse_commits_by_handlers(session)
            async with session.begin():
                new_events = await self._inbox.record(session, [item.event for item in items])
                if isinstance(self._handler, BatchHandler):
                    outcomes = await self._apply_all_at_once(self._handler, session, items, new_events)
                    allow_commit(session)
                    return outcomes
                forgotten: set[uuid.UUID] = set()
                outcomes = []
                for position, item in enumerate(items):
                    event_id = item.event.event_uuid
                    if event_id in forgotten:
                        # An earlier copy of this event in the batch failed and took its inbox row back.
                        forgotten.discard(event_id)
                        first_time = bool(await self._inbox.record(session, [item.event]))
                    else:
                        first_time = event_id in new_events
                        new_events.discard(event_id)
                    if not first_time:
                        outcomes.append(Outcome.DUPLICATE)
                        continue
                    error = await run_handler(self._handler, session, item.event)
                    if error is None:
                        outcomes.append(Outcome.PROCESSED)
                        continue
                    await self._inbox.forget(session, event_id)
                    forgotten.add(event_id)
                    self._record_failure(item, error)
                    failed.add(position)
                    outcomes.append(Outcome.FAILED)
                allow_commit(session)
        return outcomes

    @staticmethod
    async def _apply_all_at_once(
        handler: BatchHandler, session: AsyncSession, items: Sequence[Applicable], new_events: set[uuid.UUID]
    ) -> list[Outcome]:
        """The batch handler's call with the new events; raises (nothing kept) when it fails."""
        fresh: list[Event] = []
        outcomes = []
        for item in items:
            event_id = item.event.event_uuid
            if event_id in new_events:
                new_events.discard(event_id)
                fresh.append(item.event)
                outcomes.append(Outcome.PROCESSED)
            else:
                outcomes.append(Outcome.DUPLICATE)
        if fresh:
            await handler.apply(session, fresh)
        return outcomes
