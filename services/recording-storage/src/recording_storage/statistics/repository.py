"""Aggregate queries behind the upload statistics: each figure is one grouped SQL statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, and_, cast, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from recording_storage.models import EXPIRED, Recording, UploadFailure, UploadFile, UploadSession


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


async def failures_by_day(db: AsyncSession, since: datetime, now: datetime, reach: Reach) -> dict[date, dict[str, int]]:
    """Per UTC day from `since` (a UTC midnight) and per reason: the failure tally, plus the open sessions past
    their expiry that no sweep has expired yet (as expired, on the day they expired; the sweep counts them when it
    marks them). One statement, so a sweep committing meanwhile is counted once."""
    tallied = select(
        UploadFailure.day.label("day"), UploadFailure.reason.label("reason"), UploadFailure.count.label("count")
    ).where(UploadFailure.day >= since.astimezone(UTC).date(), _tenant(UploadFailure.tenant, reach))
    expiry_day = _utc_day(UploadSession.expires_at)
    unswept = (
        select(expiry_day, literal(EXPIRED), func.count())
        .where(
            UploadSession.status == "open",
            UploadSession.expires_at <= now,
            UploadSession.expires_at >= since,
            _tenant(UploadSession.tenant, reach),
        )
        .group_by(expiry_day)
    )
    both = union_all(tallied, unswept).subquery()
    statement = select(both.c.day, both.c.reason, func.sum(both.c.count)).group_by(both.c.day, both.c.reason)
    failures: dict[date, dict[str, int]] = {}
    for day, reason, count in await db.execute(statement):
        if count:
            failures.setdefault(day, {})[reason] = int(count)
    return failures


async def first_failure_day(db: AsyncSession) -> date | None:
    """The first day of the failure tally: the day counting began (the tally is never trimmed)."""
    return await db.scalar(select(func.min(UploadFailure.day)))


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
