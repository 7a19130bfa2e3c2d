"""Queries of upload sessions and their files. Locks are taken with NOWAIT: a busy session or file is refused at
once (the caller answers 409) rather than queued behind a request that may stream for minutes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from recording_storage.models import UploadFile, UploadSession

LOCK_NOT_AVAILABLE = "55P03"


class LockBusyError(Exception):
    """The row is locked by another transaction."""


def _is_lock_busy(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


async def add_session(session: AsyncSession, upload: UploadSession, kinds: Sequence[str]) -> None:
    session.add(upload)
    await session.flush()
    session.add_all(UploadFile(session_id=upload.id, kind=kind) for kind in kinds)
    await session.flush()


async def get_session(session: AsyncSession, session_id: str) -> UploadSession | None:
    return await session.get(UploadSession, session_id, populate_existing=True)


async def lock_session(session: AsyncSession, session_id: str, *, shared: bool) -> UploadSession | None:
    """The session row, locked FOR SHARE (an upload: others may upload the other file) or FOR UPDATE (finishing,
    sweeping); `LockBusyError` when the lock is held in a conflicting mode."""
    statement = select(UploadSession).where(UploadSession.id == session_id).execution_options(populate_existing=True)
    statement = statement.with_for_update(read=shared, nowait=True)
    try:
        return (await session.execute(statement)).scalar_one_or_none()
    except DBAPIError as error:
        if _is_lock_busy(error):
            raise LockBusyError from None
        raise


async def lock_file(session: AsyncSession, session_id: str, kind: str) -> UploadFile:
    statement = (
        select(UploadFile)
        .where(UploadFile.session_id == session_id, UploadFile.kind == kind)
        .with_for_update(nowait=True)
        .execution_options(populate_existing=True)
    )
    try:
        return (await session.execute(statement)).scalar_one()
    except DBAPIError as error:
        if _is_lock_busy(error):
            raise LockBusyError from None
        raise


async def files_of(session: AsyncSession, session_id: str) -> dict[str, UploadFile]:
    statement = select(UploadFile).where(UploadFile.session_id == session_id).execution_options(populate_existing=True)
    return {file.kind: file for file in (await session.execute(statement)).scalars()}


async def set_file_state(
    session: AsyncSession, file: UploadFile, *, received: int, complete: bool, sha256: str | None, now: datetime
) -> None:
    file.received, file.complete, file.sha256, file.updated_at = received, complete, sha256, now
    await session.flush()


async def lock_expired_open_sessions(session: AsyncSession, now: datetime, limit: int) -> list[UploadSession]:
    """Open sessions past their expiry, skipping those a request holds (an upload still streaming)."""
    statement = (
        select(UploadSession)
        .where(UploadSession.status == "open", UploadSession.expires_at <= now)
        .order_by(UploadSession.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(statement)).scalars())


async def lock_sessions_to_purge(
    session: AsyncSession, *, finished_before: datetime, expired_before: datetime, limit: int
) -> list[UploadSession]:
    """Finished sessions past their expiry and expired ones past a second period: their rows can go."""
    statement = (
        select(UploadSession)
        .where(
            ((UploadSession.status == "completed") & (UploadSession.expires_at <= finished_before))
            | ((UploadSession.status == "expired") & (UploadSession.expires_at <= expired_before))
        )
        .order_by(UploadSession.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(statement)).scalars())


async def mark_expired(session: AsyncSession, session_ids: Sequence[str]) -> None:
    if session_ids:
        await session.execute(update(UploadSession).where(UploadSession.id.in_(session_ids)).values(status="expired"))
        await session.execute(
            update(UploadFile)
            .where(UploadFile.session_id.in_(session_ids))
            .values(received=0, complete=False, sha256=None)
        )


async def delete_sessions(session: AsyncSession, session_ids: Sequence[str]) -> None:
    if session_ids:
        await session.execute(delete(UploadSession).where(UploadSession.id.in_(session_ids)))
