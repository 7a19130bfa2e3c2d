"""Small asyncio helpers whose plain-library spelling has a trap on Python 3.11."""

from __future__ import annotations

import asyncio
import logging
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


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended, whatever it ended with.

    Only the task's own cancellation is absorbed: when the caller is itself being cancelled, that cancellation
    propagates (suppressing every `CancelledError` here would swallow it, and the caller would run on).
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        logger.debug("a cancelled task failed as it ended", exc_info=True)
