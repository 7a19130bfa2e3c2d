"""Keeping the integration logs bounded: the Chatwoot webhook log, finished mail notifications and finished
outgoing webhook deliveries (with their attempts) are deleted once older than their retention, at start and then
every `maintenance_interval_seconds`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rtls_cambus.chatwoot import repository as chatwoot
from rtls_cambus.config import Settings
from rtls_cambus.notifications import repository as notifications
from rtls_cambus.outgoing import repository as outgoing

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Forgotten:
    """How many rows one retention pass deleted."""

    chatwoot_requests: int
    mails: int
    webhook_deliveries: int


async def forget_old_logs(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime | None = None
) -> Forgotten:
    """Delete what is past its retention."""
    now = now or datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        forgotten = Forgotten(
            chatwoot_requests=await chatwoot.delete_deliveries_before(
                session, now - timedelta(days=settings.chatwoot_delivery_retention_days)
            ),
            mails=await notifications.delete_finished_before(
                session, now - timedelta(days=settings.mail_retention_days)
            ),
            webhook_deliveries=await outgoing.delete_finished_before(
                session, now - timedelta(days=settings.webhook_delivery_retention_days)
            ),
        )
    if forgotten.chatwoot_requests or forgotten.mails or forgotten.webhook_deliveries:
        logger.info(
            "retention: %d Chatwoot webhook requests, %d mail notifications and %d webhook deliveries deleted",
            forgotten.chatwoot_requests,
            forgotten.mails,
            forgotten.webhook_deliveries,
        )
    return forgotten


async def retention_worker(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    while True:
        await forget_old_logs(app.state.sessionmaker, settings)
        await asyncio.sleep(settings.maintenance_interval_seconds)
