"""Sync runs: start one, follow it, carry it out with `SyncEngine` and record its outcome."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cvat_sync.config import Settings
from cvat_sync.cvat.client import CvatClient, auth_mode
from cvat_sync.cvat.errors import CvatConfigurationError, CvatError
from cvat_sync.jobs.service import SCHEMA, SOURCE
from cvat_sync.sync import repository
from cvat_sync.sync.engine import SyncEngine
from cvat_sync.sync.errors import (
    ActiveRunExistsError,
    CvatNotConfiguredError,
    SyncAlreadyRunningError,
    SyncRunNotFoundError,
)
from cvat_sync.sync.filters import SyncFilters
from cvat_sync.sync.models import SyncRun
from cvat_sync.sync.stats import ProgressCallback, SyncStats
from mirante.bus import Event, emit

logger = logging.getLogger(__name__)

TRIGGERS = ("cli", "api", "web")
INTERNAL_ERROR_MESSAGE = "internal error: the sync stopped unexpectedly; the details are in the service log"


def run_progress(run: SyncRun) -> float | None:
    """Fetched over expected, 0 to 1 (1 once the run succeeded); None before CVAT reported a count."""
    if run.status == "success":
        return 1.0
    if not run.expected:
        return None
    return min(1.0, run.fetched / run.expected)


def run_duration_seconds(run: SyncRun) -> float | None:
    if run.started_at is None:
        return None
    end = run.finished_at or datetime.now(UTC)
    return round((end - run.started_at).total_seconds(), 3)


def run_summary(run: SyncRun) -> str:
    """What the run did, in a line for people. A forced run says so: it re-fetches every job it covers and
    recounts their annotations, so "unchanged" there means re-fetched and found as stored."""
    if run.status in ("queued", "running") and not run.fetched:
        return "queued" if run.status == "queued" else "listing jobs"
    if run.force:
        refetched = run.created + run.updated + run.unchanged
        changed = run.created + run.updated
        parts = [f"forced: re-fetched {_jobs(refetched)} and recounted their annotations; {changed} changed"]
    else:
        parts = [f"{run.created} created, {run.updated} updated, {run.unchanged} unchanged"]
    if run.deleted:
        parts.append(f"{run.deleted} marked deleted")
    if run.failed:
        parts.append(f"{run.failed} failed")
    return ", ".join(parts)


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def check_cvat_configured(settings: Settings) -> None:
    """`CvatNotConfiguredError` (503) when the settings hold no usable CVAT credential."""
    try:
        auth_mode(settings)
    except CvatConfigurationError as error:
        raise CvatNotConfiguredError(str(error)) from None


async def start_run(
    session: AsyncSession,
    *,
    filters: SyncFilters,
    force: bool,
    trigger: str,
    started_by: str | None,
    status: str = "queued",
) -> SyncRun:
    """Record a new run (`queued` for the worker, or `running` for a foreground sync that holds the run
    lock); `SyncAlreadyRunningError` (409) names the active run."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    if status not in ("queued", "running"):
        raise ValueError("a new run is queued or running")
    values: dict[str, Any] = {
        "status": status,
        "trigger": trigger,
        "started_by": started_by,
        "filters": filters.as_json(),
        "force": force,
    }
    if status == "running":
        values["started_at"] = datetime.now(UTC)
    try:
        return await repository.insert_run(session, values)
    except ActiveRunExistsError:
        raise SyncAlreadyRunningError(await repository.active_run(session)) from None


async def get_run(session: AsyncSession, run_id: int) -> SyncRun:
    run = await repository.get_run(session, run_id)
    if run is None:
        raise SyncRunNotFoundError(run_id)
    return run


async def list_runs(
    session: AsyncSession, *, offset: int, limit: int, status: str | None = None
) -> tuple[list[SyncRun], int]:
    return await repository.list_runs(session, offset=offset, limit=limit, status=status)


async def execute_run(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    run_id: int,
    *,
    client: CvatClient | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncRun:
    """Carry out a run already marked running, then record its counts and outcome and emit
    `cvat.sync.completed`. CVAT and internal errors end the run as `error`; they are not raised."""
    async with sessionmaker() as session:
        run = await get_run(session, run_id)
        filters, force = SyncFilters.from_json(run.filters), run.force
    stats = SyncStats()
    status, error = "success", None
    try:
        own_client = client or CvatClient(settings)
        engine = SyncEngine(sessionmaker, own_client, settings, run_id=run_id, on_progress=on_progress)
        stats = engine.stats
        try:
            await engine.run(filters, force=force)
        finally:
            if client is None:
                await own_client.aclose()
    except CvatError as failure:
        status, error = "error", str(failure)
    except asyncio.CancelledError:
        await asyncio.shield(
            _finish(sessionmaker, run_id, stats, "error", "interrupted: the process stopped during the sync")
        )
        raise
    except Exception:
        logger.exception("sync run %d failed", run_id)
        status, error = "error", INTERNAL_ERROR_MESSAGE
    return await _finish(sessionmaker, run_id, stats, status, error)


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: int, stats: SyncStats, status: str, error: str | None
) -> SyncRun:
    async with sessionmaker() as session, session.begin():
        run = await repository.get_run(session, run_id, refresh=True)
        if run is None:
            raise SyncRunNotFoundError(run_id)
        for name, value in stats.as_dict().items():
            setattr(run, name, value)
        run.status, run.error, run.finished_at = status, error, datetime.now(UTC)
        await session.flush()
        await emit(session, SCHEMA, _completed_event(run))
    logger.info("sync run %d: %s %s", run_id, status, stats.counts())
    return run


def _completed_event(run: SyncRun) -> Event:
    data = {
        "run_id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "started_by": run.started_by,
        "filters": run.filters,
        "force": run.force,
        "expected": run.expected,
        "fetched": run.fetched,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "deleted": run.deleted,
        "failed": run.failed,
        "duration_seconds": run_duration_seconds(run),
        "summary": run_summary(run),
        "error": run.error,
    }
    return Event(source=SOURCE, type="cvat.sync.completed", subject=f"sync-run/{run.id}", data=data)
