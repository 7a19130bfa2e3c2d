"""The background work of heartbeats, run in the app's lifespan by every replica (each step is safe to run from
several at once): the presence sweep and the partition maintenance."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vision_orchestrator.config import Settings
from vision_orchestrator.heartbeats.partitions import drop_expired, ensure_partitions
from vision_orchestrator.heartbeats.presence import sweep_silent

logger = logging.getLogger(__name__)


async def maintain_partitions(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, today: datetime | None = None
) -> tuple[list[str], list[str]]:
    """Create the coming days' partitions and drop the expired ones; the names created and dropped."""
    day = (today or datetime.now(UTC)).date()
    async with sessionmaker() as session, session.begin():
        created = await ensure_partitions(session, day, settings.heartbeat_partitions_ahead_days)
        dropped = await drop_expired(session, day, settings.heartbeat_retention_days)
    if created or dropped:
        logger.info("heartbeat partitions: created %s, dropped %s", created or "none", dropped or "none")
    return created, dropped


async def partition_worker(app: FastAPI) -> None:
    """At start, then every `heartbeat_maintenance_interval_seconds`."""
    settings: Settings = app.state.settings
    while True:
        await maintain_partitions(app.state.sessionmaker, settings)
        await asyncio.sleep(settings.heartbeat_maintenance_interval_seconds)


async def sweep_once(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> list[str]:
    async with sessionmaker() as session, session.begin():
        return await sweep_silent(session, timedelta(seconds=settings.machine_offline_after_seconds))


async def presence_worker(app: FastAPI) -> None:
    """Every `presence_check_interval_seconds`, turn offline the machines whose heartbeats stopped."""
    settings: Settings = app.state.settings
    while True:
        await asyncio.sleep(settings.presence_check_interval_seconds)
        await sweep_once(app.state.sessionmaker, settings)
