"""Batch collection and reconnect delays of the subscriber runner."""

from __future__ import annotations

import asyncio
import random

from mirante.mqtt.message import Message


async def collect_batch(buffer: asyncio.Queue[Message], batch_size: int, batch_interval: float) -> list[Message]:
    """Wait for a first message, then gather more until `batch_size` or `batch_interval` seconds after it."""
    batch = [await buffer.get()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + batch_interval
    while len(batch) < batch_size:
        while len(batch) < batch_size and not buffer.empty():
            batch.append(buffer.get_nowait())
        remaining = deadline - loop.time()
        if len(batch) >= batch_size or remaining <= 0:
            break
        try:
            # Unlike wait_for, timeout() never swallows an outside cancellation; a message whose get()
            # is interrupted by the deadline stays queued for the next batch.
            async with asyncio.timeout(remaining):
                batch.append(await buffer.get())
        except TimeoutError:
            break
    return batch


class Backoff:
    """Exponential delays with jitter, so that many workers do not reconnect in lockstep."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._attempt = 0

    def next_delay(self) -> float:
        """The next delay: half of the current ceiling plus a random part of the other half."""
        ceiling = min(self._maximum, self._initial * 2.0 ** min(self._attempt, 32))
        self._attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._attempt = 0
