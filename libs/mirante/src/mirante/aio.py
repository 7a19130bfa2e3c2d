"""Small asyncio helpers whose plain-library spelling has a trap on Python 3.11."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` have passed; True when it was set.

    `asyncio.wait_for` is not used: on Python 3.11 it loses a cancellation that arrives just as the wait ends,
    so a loop sleeping this way could outlive the shutdown that cancelled it.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def raise_if_cancel_requested() -> None:
    """Raise `CancelledError` when the current task was asked to stop and is still running; call it at each turn
    of a long-running loop.

    A cancellation can be swallowed on its way: redis-py sends every command through `asyncio.wait_for` (when the
    client has a socket timeout), which on Python 3.11 drops a cancellation arriving as the write completes, and
    the command then returns as if nothing had happened. The request stays counted (`Task.cancelling()`), so the
    loop stops at its next turn instead of running on, unstoppable, while its app's shutdown waits for it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


RECANCEL_AFTER_SECONDS = 5.0


async def cancel_all_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, whatever it ended with.

    A task still running `RECANCEL_AFTER_SECONDS` after its cancellation is cancelled again, and so on: its
    cancellation may have been swallowed (see `raise_if_cancel_requested`), and a loop that lost it would
    otherwise keep the caller waiting forever. Only the tasks' own cancellations are absorbed: when the caller is
    itself being cancelled, that cancellation propagates.
    """
    started = list(tasks)
    pending = set(started)
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER_SECONDS)
        for task in pending:
            logger.warning("task %s still runs after its cancellation; cancelling it again", task.get_name())
            task.cancel()
    for task in started:
        if not task.cancelled() and task.exception() is not None:
            logger.debug("a cancelled task failed as it ended", exc_info=task.exception())


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended, whatever it ended with (see `cancel_all_and_wait`)."""
    await cancel_all_and_wait([task])
