"""The notifications worker: the planner as a member of a consumer group on the rtls-cambus stream, and the
sender, for the app's lifetime. Off without a mail server (`MIRANTE_SMTP_HOST`): nothing is planned then, so
nothing piles up waiting for a server that may never be configured."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Final

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.aio import cancel_and_wait
from mirante.bus import StreamConsumer, fixed_types
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SCHEMA
from rtls_cambus.notifications.planner import PLANNED_TYPES, NotificationPlanner
from rtls_cambus.notifications.sender import MailSender

logger = logging.getLogger(__name__)

GROUP: Final = "rtls-cambus-notifications"


def notification_consumer(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    planner: NotificationPlanner,
    streams: list[str],
    *,
    group: str = GROUP,
    consumer_name: str | None = None,
    block_ms: int = 2_000,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        sessionmaker,
        streams,
        group,
        consumer_name or f"{GROUP}-{socket.gethostname()}",
        planner.handle,
        SCHEMA,
        block_ms=block_ms,
        wanted_types=fixed_types(PLANNED_TYPES),
    )


async def notifications_worker(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    if not settings.notifications_enabled:
        return
    if not settings.infra.smtp.configured:
        logger.info("no mail server (MIRANTE_SMTP_HOST is unset): alert and incident mails are off")
        return
    sender = MailSender(app.state.sessionmaker, settings)
    planner = NotificationPlanner(settings, on_planned=sender.wake)
    consumer = notification_consumer(app.state.redis, app.state.sessionmaker, planner, [app.state.spec.stream])
    consuming = asyncio.create_task(consumer.run(), name="notifications-consumer")
    try:
        await sender.run()
    finally:
        consumer.stop()
        await cancel_and_wait(consuming)
