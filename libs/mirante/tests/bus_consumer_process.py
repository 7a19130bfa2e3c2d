"""A stream consumer in its own process, for crash tests: its handler writes one row per event.

Run with the test's interpreter; the test kills it with SIGKILL. With `--kill-before-ack-of-batch N` it
kills itself right after committing its N-th batch and before acknowledging any entry of it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Sequence

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus.consumer import StreamConsumer
from mirante.bus.envelope import Event
from mirante.db import checked_identifier, create_engine, create_sessionmaker


class ConsumerKilledBeforeAck(StreamConsumer):
    """Dies by SIGKILL between the commit and the XACK of its N-th batch (one XACK per batch of one stream)."""

    kill_before_ack_of_batch = 0
    _acks = 0

    async def _acknowledge(self, stream: str, entry_ids: Sequence[str]) -> None:
        self._acks += 1
        if self._acks == self.kill_before_ack_of_batch:
            os.kill(os.getpid(), signal.SIGKILL)
        await super()._acknowledge(stream, entry_ids)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--handler-sleep-ms", type=int, default=10)
    parser.add_argument("--kill-before-ack-of-batch", type=int, default=0)
    return parser.parse_args()


async def consume(arguments: argparse.Namespace) -> None:
    schema = checked_identifier(arguments.schema)
    engine = create_engine(arguments.database_url)
    redis = Redis.from_url(arguments.redis_url, socket_timeout=10)
    record_effect = text(f'INSERT INTO "{schema}".effects (event_id, handled_by) VALUES (:event_id, :by)')

    async def handler(session: AsyncSession, event: Event) -> None:
        await session.execute(record_effect, {"event_id": event.event_uuid, "by": arguments.consumer})
        await asyncio.sleep(arguments.handler_sleep_ms / 1000)

    consumer = ConsumerKilledBeforeAck(
        redis,
        create_sessionmaker(engine),
        arguments.stream,
        arguments.group,
        arguments.consumer,
        handler,
        schema,
        batch_size=arguments.batch_size,
        block_ms=200,
        # Far above the test's length: this process never reclaims, it only leaves entries behind.
        min_idle_ms=600_000,
    )
    consumer.kill_before_ack_of_batch = arguments.kill_before_ack_of_batch
    try:
        await consumer.run()
    finally:
        await redis.aclose()
        await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(consume(parse_arguments()))
