"""Running sync runs: the background worker of the app, and the run lock every sync process holds.

Whoever executes a run (a worker of any replica, or `cvat-sync sync`) holds a Postgres session-level
advisory lock for the whole run. Postgres drops that lock when the holder's connection ends, so a run left
`running` by a process that crashed or was killed is recognised as abandoned as soon as anyone can take the
lock, without guessing from timestamps. Queued runs are claimed with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cvat_sync.config import Settings
from cvat_sync.cvat.client import CvatClient
from cvat_sync.sync import repository
from cvat_sync.sync.service import execute_run
from cvat_sync.sync.stats import ProgressCallback
from mirante.aio import wait_event

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

RUN_LOCK_KEY = int.from_bytes(hashlib.sha256(b"cvat_sync.sync_runs").digest()[:8], "big", signed=True)
POLL_SECONDS = 2.0
QUEUED_TIMEOUT = timedelta(minutes=15)
ABANDONED_MESSAGE = "abandoned: the process running this sync stopped (crashed or was killed) before it finished"
NEVER_PICKED_MESSAGE = (
    f"no cvat-sync service picked this run up within {int(QUEUED_TIMEOUT.total_seconds() // 60)} minutes; "
    "start the service (`cvat-sync serve` or `mirante up`) or run `cvat-sync sync`"
)


@asynccontextmanager
async def run_lock(engine: AsyncEngine) -> AsyncIterator[bool]:
    """Try to take the run lock on a dedicated connection; yields whether this process holds it."""
    async with engine.connect() as connection:
        held = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": RUN_LOCK_KEY}))
        # End the implicit transaction: the lock is session-level and outlives it.
        await connection.commit()
        try:
            yield held
        finally:
            if held:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RUN_LOCK_KEY})
                await connection.commit()


async def reap_abandoned_runs(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
    """Fail runs no process is executing. Call only while holding the run lock: then no `running` run is
    alive, and a run queued for longer than `QUEUED_TIMEOUT` has no worker to pick it up."""
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        reaped = await repository.fail_runs(session, status="running", message=ABANDONED_MESSAGE, now=now)
        reaped += await repository.fail_runs(
            session, status="queued", message=NEVER_PICKED_MESSAGE, now=now, created_before=now - QUEUED_TIMEOUT
        )
    if reaped:
        logger.warning("sync runs %s marked as error: nothing was executing them", reaped)
    return reaped


async def run_next(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    client: CvatClient | None = None,
    on_progress: ProgressCallback | None = None,
) -> int | None:
    """Claim and execute the oldest queued run; its id, or None when there was nothing this process could run."""
    async with run_lock(engine) as held:
        if not held:
            return None
        await reap_abandoned_runs(sessionmaker)
        async with sessionmaker() as session, session.begin():
            run = await repository.claim_queued_run(session, datetime.now(UTC))
            run_id = None if run is None else run.id
        if run_id is None:
            return None
        logger.info("sync run %d started", run_id)
        await execute_run(sessionmaker, settings, run_id, client=client, on_progress=on_progress)
        return run_id


def wake_sync_worker(app: FastAPI) -> None:
    """Tell this process's worker a run was queued (other replicas find it at their next poll)."""
    wakeup: asyncio.Event | None = getattr(app.state, "sync_wakeup", None)
    if wakeup is not None:
        wakeup.set()


async def sync_worker(app: FastAPI) -> None:
    """The app's worker: runs queued syncs one at a time, woken by new runs or every `POLL_SECONDS`."""
    wakeup = asyncio.Event()
    app.state.sync_wakeup = wakeup
    settings: Settings = app.state.settings
    engine: AsyncEngine = app.state.engine
    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    while True:
        if await run_next(engine, sessionmaker, settings) is not None:
            continue
        await wait_event(wakeup, POLL_SECONDS)
        wakeup.clear()
