"""Running an event handler inside a consumer's batch transaction without letting it touch the rest.

The transaction holds a whole batch: each handler runs in a savepoint of its own, may not commit, and must
leave the savepoint it was given as the current one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction
from sqlalchemy.orm import Session

from mirante.bus.envelope import Event
from mirante.web.request_id import bind_request_id

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
"""`await handler(session, event)`: apply the event in the consumer's transaction (flush, never commit).

The transaction holds a whole batch, so a handler must leave it as it found it: no `commit()`, no
`rollback()`, no savepoint left open. It may raise; that undoes its own work only."""


@dataclass(frozen=True)
class BatchHandler:
    """A handler that applies all the new events of a batch in one call, with no savepoint per event.

    `await apply(session, events)` runs in the consumer's batch transaction with the events never handled
    before (in stream order, each once), under the same rules as a `Handler`: flush, never commit. When it
    raises, nothing of the batch is kept and the batch is applied again one event per transaction, so one
    event it cannot take fails alone, as with a `Handler`. For handlers that do the same for each event:
    one statement for a whole batch instead of a savepoint and statements for each event.
    """

    apply: Callable[[AsyncSession, Sequence[Event]], Awaitable[None]]


_COMMIT_ALLOWED = "mirante.bus.consumer.commit_allowed"


class HandlerCommitError(RuntimeError):
    """A handler tried to commit the consumer's transaction, which also holds the rest of its batch."""


class TransactionBrokenError(RuntimeError):
    """A handler ended or replaced the batch transaction or its own savepoint; nothing of it may commit."""


def refuse_commits_by_handlers(session: AsyncSession) -> None:
    """Make a handler's `commit()` raise `HandlerCommitError`: it would also commit the inbox rows of the
    batch entries not handled yet, which would then be skipped as duplicates and never applied."""

    def refuse_unless_allowed(sync_session: Session) -> None:
        # Releasing a savepoint fires this event too; only the end of the whole transaction is refused.
        if sync_session.in_nested_transaction() or sync_session.info.get(_COMMIT_ALLOWED):
            return
        raise HandlerCommitError("a handler must not commit: the consumer commits the whole batch")

    sqlalchemy_event.listen(session.sync_session, "before_commit", refuse_unless_allowed)


def allow_commit(session: AsyncSession) -> None:
    """Let the consumer's own commit of the batch through `refuse_commits_by_handlers`."""
    session.info[_COMMIT_ALLOWED] = True


async def run_handler(handler: Handler, session: AsyncSession, event: Event) -> Exception | None:
    """Run `handler` in a savepoint; returns its error after rolling the savepoint back, or None.

    Raises `TransactionBrokenError` when the handler ended the savepoint or the transaction itself.
    """
    bind_request_id(event.id)
    try:
        savepoint = await session.begin_nested()
        try:
            await handler(session, event)
            _check_savepoint_kept(session, savepoint, None)
            # Releasing the savepoint flushes the handler's pending objects: a failing flush lands below
            # and counts as this handler's failure.
            await savepoint.commit()
        except TransactionBrokenError:
            raise
        except Exception as error:
            _check_savepoint_kept(session, savepoint, error)
            await savepoint.rollback()
            return error
        return None
    finally:
        bind_request_id(None)


def _check_savepoint_kept(
    session: AsyncSession, savepoint: AsyncSessionTransaction, handler_error: Exception | None
) -> None:
    if session.sync_session.get_nested_transaction() is savepoint.sync_transaction:
        return
    problem = "the handler ended its savepoint or the transaction, or left a savepoint of its own open"
    if handler_error is not None:
        problem += f" ({type(handler_error).__name__}: {handler_error})"
    raise TransactionBrokenError(problem) from handler_error
