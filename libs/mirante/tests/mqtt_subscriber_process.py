"""A subscriber whose handler never commits, run as its own process by the crash test.

It prints `connected` once subscribed and `received <n>` for each batch, then waits to be killed.
Usage: python mqtt_subscriber_process.py URL CLIENT_ID TOPIC_FILTER
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from mirante.mqtt import Message, SubscriberRunner


async def never_commit(messages: Sequence[Message]) -> None:
    print(f"received {len(messages)}", flush=True)
    await asyncio.Event().wait()


async def main(url: str, client_id: str, topic_filter: str) -> None:
    runner = SubscriberRunner(
        url,
        client_id=client_id,
        topics=[topic_filter],
        handler=never_commit,
        batch_size=100,
        batch_interval=0.2,
    )
    task = asyncio.create_task(runner.run())
    await runner.connected.wait()
    print("connected", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
