"""Queries on the mirrored jobs and their history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.jobs.models import Job, JobChange


async def lock_existing(session: AsyncSession, ids: Sequence[int]) -> dict[int, Job]:
    """The stored jobs among `ids`, locked until the transaction ends (concurrent writers queue up)."""
    if not ids:
        return {}
    rows = await session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id).with_for_update())
    return {job.id: job for job in rows}


async def insert_jobs(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(Job), list(rows))


async def update_jobs(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk update by primary key: each row holds `id` and the columns to set."""
    if rows:
        await session.execute(update(Job), list(rows))


async def add_history(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(JobChange), list(rows))


async def touch(session: AsyncSession, ids: Iterable[int], at: datetime) -> None:
    """Record that these jobs were seen unchanged at `at` (a full sync deletes what it did not see)."""
    id_list = list(ids)
    if id_list:
        await session.execute(update(Job).where(Job.id.in_(id_list)).values(last_synced_at=at))
