"""Queries of the sync feature: sync runs, and the light reads of stored jobs a sync needs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, case, func, insert, null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.jobs.repository import JOBS
from cvat_sync.sync.errors import ActiveRunExistsError
from cvat_sync.sync.models import ACTIVE_STATUSES, SyncRun
from mirante.db import paginate_scalars

ONE_ACTIVE_INDEX = "uq_sync_runs_one_active"
# Taken for the rest of the transaction by whoever starts a run: starts queue up on it, so each sees the
# runs the previous one committed and a refused start never reaches the insert (which would spend an id).
START_LOCK_KEY = int.from_bytes(hashlib.sha256(b"cvat_sync.sync_runs.start").digest()[:8], "big", signed=True)
_LIVE = JOBS.c.deleted_at.is_(None)
# The version a sync compares the listing with; none for a job whose recount was asked for, so the sync
# fetches it (with its counts) as it would a changed one.
_VERSION = case((JOBS.c.counts_requested_at.is_(None), JOBS.c.cvat_updated_at), else_=null())
# Built once, on the table (Core rows, no ORM loading): a sync reads these for every page it lists.
LIVE_VERSIONS = select(JOBS.c.id, _VERSION).where(JOBS.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))), _LIVE)
LIVE_VERSIONS_AFTER = (
    select(JOBS.c.id, _VERSION)
    .where(JOBS.c.id > bindparam("after"), _LIVE)
    .order_by(JOBS.c.id)
    .limit(bindparam("limit"))
)


async def insert_run(session: AsyncSession, values: dict[str, Any]) -> SyncRun:
    """Insert a run; `ActiveRunExistsError` when another run is queued or running, found before the insert
    (no run id is spent on a refusal). The caller's transaction stays usable, and holds the start lock until
    it ends."""
    await session.execute(select(func.pg_advisory_xact_lock(START_LOCK_KEY)))
    if await active_run(session) is not None:
        raise ActiveRunExistsError()
    try:
        async with session.begin_nested():
            run_id = await session.scalar(insert(SyncRun).values(**values).returning(SyncRun.id))
    except IntegrityError as error:
        if ONE_ACTIVE_INDEX in str(error.orig):
            raise ActiveRunExistsError() from None
        raise
    run = await session.get(SyncRun, run_id)
    assert run is not None
    return run


async def active_run(session: AsyncSession) -> SyncRun | None:
    return await session.scalar(select(SyncRun).where(SyncRun.status.in_(ACTIVE_STATUSES)).limit(1))


async def get_run(session: AsyncSession, run_id: int, *, refresh: bool = False) -> SyncRun | None:
    return await session.get(SyncRun, run_id, populate_existing=refresh)


async def list_runs(
    session: AsyncSession, *, offset: int, limit: int, status: str | None = None
) -> tuple[list[SyncRun], int]:
    """Runs newest first, with the total count of the (optionally status-filtered) list."""
    query = select(SyncRun).order_by(SyncRun.id.desc())
    if status is not None:
        query = query.where(SyncRun.status == status)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def claim_queued_run(session: AsyncSession, now: datetime) -> SyncRun | None:
    """The oldest queued run, locked (`SKIP LOCKED`: replicas never claim the same run) and set running."""
    run = await session.scalar(
        select(SyncRun)
        .where(SyncRun.status == "queued")
        .order_by(SyncRun.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if run is None:
        return None
    run.status = "running"
    run.started_at = now
    await session.flush()
    return run


async def fail_runs(
    session: AsyncSession, *, status: str, message: str, now: datetime, created_before: datetime | None = None
) -> list[int]:
    """Mark every run in `status` (created before `created_before`, when given) as failed with `message`."""
    statement = update(SyncRun).where(SyncRun.status == status)
    if created_before is not None:
        statement = statement.where(SyncRun.created_at < created_before)
    rows = await session.scalars(statement.values(status="error", error=message, finished_at=now).returning(SyncRun.id))
    return list(rows)


async def record_progress(session: AsyncSession, run_id: int, counts: dict[str, Any]) -> None:
    await session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**counts))


async def live_versions(session: AsyncSession, ids: Sequence[int]) -> dict[int, datetime | None]:
    """`{id: cvat_updated_at}` of the live stored jobs among `ids` (no lock, no payload); None for a job
    whose annotations must be counted again."""
    if not ids:
        return {}
    rows = await session.execute(LIVE_VERSIONS, {"ids": list(ids)})
    return dict(rows.all())


async def live_versions_after(session: AsyncSession, after: int, limit: int) -> list[tuple[int, datetime | None]]:
    """`(id, cvat_updated_at)` of the next `limit` live stored jobs with `id > after`, ascending (keyset), as
    `live_versions` gives them."""
    rows = await session.execute(LIVE_VERSIONS_AFTER, {"after": after, "limit": limit})
    return [(job_id, updated_at) for job_id, updated_at in rows]
