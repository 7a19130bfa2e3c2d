"""The asyncio helpers: waits that end on time, and cancellations that are never lost."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mirante import aio
from mirante.aio import cancel_all_and_wait, cancel_and_wait, raise_if_cancel_requested, wait_event


async def test_wait_event_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 10) is True


async def test_a_cancellation_arriving_as_the_event_is_set_is_not_lost() -> None:
    # The case `asyncio.wait_for` gets wrong on Python 3.11: the waiter would return instead of ending.
    event = asyncio.Event()
    waiter = asyncio.create_task(wait_event(event, 10))
    await asyncio.sleep(0)
    event.set()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_cancel_and_wait_ends_the_task_whatever_it_ends_with() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    for body in (asyncio.sleep(10), fails_when_cancelled()):
        task = asyncio.create_task(body)
        await asyncio.sleep(0)
        await cancel_and_wait(task)
        assert task.done()


async def test_cancel_and_wait_lets_the_callers_own_cancellation_through() -> None:
    started = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            started.set()
            await asyncio.sleep(10)

    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    outer = asyncio.create_task(cancel_and_wait(inner))
    await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    inner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await inner


async def swallow_one_cancellation() -> None:
    """What redis-py's `asyncio.wait_for` does on Python 3.11 to a cancellation arriving as a write completes."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(10)


async def test_a_loop_stops_at_its_next_turn_after_a_swallowed_cancellation() -> None:
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            raise_if_cancel_requested()
            turns += 1
            await swallow_one_cancellation()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert turns == 1
    raise_if_cancel_requested()  # this task was never asked to stop


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aio, "RECANCEL_AFTER_SECONDS", 0.05)

    async def swallows_then_waits() -> None:
        await swallow_one_cancellation()
        await asyncio.sleep(10)

    quick = asyncio.create_task(asyncio.sleep(10))
    deaf = asyncio.create_task(swallows_then_waits())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_all_and_wait([quick, deaf]), timeout=5)
    assert quick.cancelled() and deaf.cancelled()
