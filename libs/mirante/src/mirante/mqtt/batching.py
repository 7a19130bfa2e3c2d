"""Batch collection of the subscriber runner, and its reconnect delays (the library's `Backoff`)."""

from __future__ import annotations

import asyncio

from mirante.backoff import Backoff
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


__all__ = ["Backoff", "collect_batch"]
