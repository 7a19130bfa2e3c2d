"""Keeping the integration logs bounded: the Chatwoot webhook log and finished mail notifications are deleted once
older than their retention, at start and then every `maintenance_interval_seconds`."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rtls_cambus.chatwoot import repository as chatwoot
from rtls_cambus.config import Settings
from rtls_cambus.notifications import repository as notifications

logger = logging.getLogger(__name__)


async def forget_old_logs(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime | None = None
) -> tuple[int, int]:
    """Delete what is past its retention; how many Chatwoot requests and mail notifications went."""
    now = now or datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        deliveries = await chatwoot.delete_deliveries_before(
            session, now - timedelta(days=settings.chatwoot_delivery_retention_days)
        )
        mails = await notifications.delete_finished_before(session, now - timedelta(days=settings.mail_retention_days))
    if deliveries or mails:
        logger.info("retention: %d Chatwoot webhook requests and %d mail notifications deleted", deliveries, mails)
    return deliveries, mails


async def retention_worker(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    while True:
        await forget_old_logs(app.state.sessionmaker, settings)
        await asyncio.sleep(settings.maintenance_interval_seconds)
