"""The sweeper: one periodic task per replica that expires abandoned upload sessions, removes the rows of old
sessions, and deletes recordings older than the retention.

Each batch is its own transaction and takes its rows with SKIP LOCKED, so replicas sweeping at once share the
work, and a session an upload request still holds is left for a later sweep.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recording_storage.config import Settings
from recording_storage.recordings import service as recordings
from recording_storage.storage.base import Storage
from recording_storage.uploads import service as uploads

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    expired_sessions: int
    purged_sessions: int
    deleted_recordings: int


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage, settings: Settings, now: datetime | None = None
) -> SweepReport:
    """One sweep, batch by batch until nothing is left."""
    now = now or datetime.now(UTC)
    batch = settings.sweep_batch_size
    expired = purged = deleted = 0
    while True:
        async with sessionmaker() as db, db.begin():
            count = await uploads.expire_sessions(db, storage, now, batch)
        expired += count
        if count < batch:
            break
    ttl = timedelta(seconds=settings.session_ttl_seconds)
    while True:
        async with sessionmaker() as db, db.begin():
            count = await uploads.purge_sessions(db, storage, now, ttl, batch)
        purged += count
        if count < batch:
            break
    if settings.retention_days is not None:
        cutoff = now - timedelta(days=settings.retention_days)
        while True:
            async with sessionmaker() as db, db.begin():
                count, keys = await recordings.delete_older_than(db, cutoff, batch)
            # Files go after the commit: a failed transaction keeps each row with its files.
            for key in keys:
                await storage.delete(key)
            deleted += count
            if count < batch:
                break
    return SweepReport(expired_sessions=expired, purged_sessions=purged, deleted_recordings=deleted)


async def sweeper_worker(app: FastAPI) -> None:
    """Sweep every `sweep_interval_seconds`, the first time `sweep_initial_delay_seconds` after start."""
    settings: Settings = app.state.settings
    if not settings.sweep_enabled:
        return
    await asyncio.sleep(settings.sweep_initial_delay_seconds)
    while True:
        report = await sweep(app.state.sessionmaker, app.state.storage, settings)
        if report.expired_sessions or report.purged_sessions or report.deleted_recordings:
            logger.info(
                "sweep: %d session(s) expired, %d session row(s) removed, %d recording(s) past retention deleted",
                report.expired_sessions,
                report.purged_sessions,
                report.deleted_recordings,
            )
        await asyncio.sleep(settings.sweep_interval_seconds)
