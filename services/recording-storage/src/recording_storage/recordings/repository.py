"""Queries of recordings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from recording_storage.models import Recording


@dataclass(frozen=True)
class RecordingFilters:
    wats_user: str | None = None
    machine: str | None = None
    server: str | None = None
    connection_type: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    tenant: str | None = None
    """Only this tenant's recordings (a tenant-bound caller)."""
    tenant_bound: bool = False


def _filtered(filters: RecordingFilters) -> Select[Any]:
    statement = select(Recording)
    if filters.tenant_bound:
        statement = statement.where(Recording.tenant == filters.tenant)
    if filters.wats_user is not None:
        statement = statement.where(Recording.wats_user == filters.wats_user)
    if filters.machine is not None:
        statement = statement.where(Recording.wats_user_machine == filters.machine)
    if filters.server is not None:
        statement = statement.where(or_(Recording.server_name == filters.server, Recording.server_ip == filters.server))
    if filters.connection_type is not None:
        statement = statement.where(Recording.connection_type == filters.connection_type)
    if filters.start is not None:
        statement = statement.where(Recording.start_time >= filters.start)
    if filters.end is not None:
        statement = statement.where(Recording.start_time < filters.end)
    return statement


async def list_recordings(
    session: AsyncSession, filters: RecordingFilters, *, offset: int, limit: int
) -> tuple[list[Recording], int]:
    statement = _filtered(filters).order_by(Recording.start_time.desc().nulls_last(), Recording.id)
    return await paginate_scalars(session, statement, offset=offset, limit=limit)


async def add(session: AsyncSession, recording: Recording) -> None:
    session.add(recording)
    await session.flush()


async def get(session: AsyncSession, recording_id: uuid.UUID) -> Recording | None:
    return await session.get(Recording, recording_id)


async def lock(session: AsyncSession, recording_id: uuid.UUID) -> Recording | None:
    statement = select(Recording).where(Recording.id == recording_id).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_older_than(session: AsyncSession, created_before: datetime, limit: int) -> Sequence[Recording]:
    """Recordings uploaded before `created_before`, oldest first, skipping rows another transaction holds."""
    statement = (
        select(Recording)
        .where(Recording.created_at < created_before)
        .order_by(Recording.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(statement)).scalars())


async def remove(session: AsyncSession, recordings: Sequence[Recording]) -> None:
    for recording in recordings:
        await session.delete(recording)
    await session.flush()


async def of_client_session(
    session: AsyncSession, owner_kind: str, owner_id: int, client_session_id: str
) -> Recording | None:
    """The owner's newest recording uploaded under the recorder's session id."""
    statement = (
        select(Recording)
        .where(
            Recording.owner_kind == owner_kind,
            Recording.owner_id == owner_id,
            Recording.client_session_id == client_session_id,
        )
        .order_by(Recording.created_at.desc())
        .limit(1)
    )
    return (await session.execute(statement)).scalar_one_or_none()
