"""Aggregate queries behind the upload statistics: each figure is one grouped SQL statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from recording_storage.models import Recording, UploadFile, UploadSession


@dataclass(frozen=True)
class Reach:
    """Only this tenant's rows when `bound` (a tenant-bound caller)."""

    tenant: str | None
    bound: bool


def _utc_day(column: Any) -> Any:
    return cast(func.timezone("UTC", column), Date)


def _tenant(column: Any, reach: Reach) -> Any:
    return column == reach.tenant if reach.bound else True


async def volume_by_day(db: AsyncSession, since: datetime, reach: Reach) -> dict[date, tuple[int, int]]:
    """Per UTC day from `since`: recordings finished and their bytes (video plus metadata)."""
    day = _utc_day(Recording.created_at).label("day")
    statement = (
        select(
            day,
            func.count(),
            func.coalesce(func.sum(Recording.video_size + func.coalesce(Recording.metadata_size, 0)), 0),
        )
        .where(Recording.created_at >= since, _tenant(Recording.tenant, reach))
        .group_by(day)
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in await db.execute(statement)}


def _failed(now: datetime) -> Any:
    # An open session past its expiry is abandoned even before the sweeper marks it.
    return or_(
        UploadSession.status == "expired",
        and_(UploadSession.status == "open", UploadSession.expires_at <= now),
    )


async def failures_by_day(db: AsyncSession, since: datetime, now: datetime, reach: Reach) -> dict[date, int]:
    """Per UTC day of expiry from `since`: sessions that expired unfinished (and are still held)."""
    day = _utc_day(UploadSession.expires_at).label("day")
    statement = (
        select(day, func.count())
        .where(_failed(now), UploadSession.expires_at >= since, _tenant(UploadSession.tenant, reach))
        .group_by(day)
    )
    return {row[0]: int(row[1]) for row in await db.execute(statement)}


@dataclass(frozen=True)
class InProgress:
    sessions: int
    declared_bytes: int
    received_bytes: int
    oldest_created_at: datetime | None


async def in_progress(db: AsyncSession, now: datetime, reach: Reach) -> InProgress:
    """Open sessions before their expiry: how many, the bytes they declared (video and any declared metadata),
    the bytes received so far, and when the oldest began."""
    open_now = and_(
        UploadSession.status == "open", UploadSession.expires_at > now, _tenant(UploadSession.tenant, reach)
    )
    received = (
        select(func.coalesce(func.sum(UploadFile.received), 0))
        .join(UploadSession, UploadSession.id == UploadFile.session_id)
        .where(open_now)
        .scalar_subquery()
    )
    statement = select(
        func.count(),
        func.coalesce(func.sum(UploadSession.video_size + func.coalesce(UploadSession.metadata_size, 0)), 0),
        received,
        func.min(UploadSession.created_at),
    ).where(open_now)
    row = (await db.execute(statement)).one()
    return InProgress(int(row[0]), int(row[1]), int(row[2]), row[3])
