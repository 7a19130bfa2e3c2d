"""Queries of upload sessions and their files. Row locks last one short transaction and are taken with NOWAIT
(a busy session is refused at once, the caller answers 409); a file being written is held by a lease, never by a
lock kept while its body streams. Lease times are on the database's clock, so replicas' clocks do not matter."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from recording_storage.models import UploadFailure, UploadFile, UploadSession

LOCK_NOT_AVAILABLE = "55P03"


class LockBusyError(Exception):
    """The row is locked by another transaction."""


def _is_lock_busy(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


async def add_session(session: AsyncSession, upload: UploadSession, kinds: Sequence[str]) -> bool:
    """Insert the session and its files; False, inserting nothing, when the owner has an open session for the same
    recording already. A concurrent insert for it waits on the unique index until the other transaction ends, so
    the session that won is committed (and visible to the next statement) when this answers False."""
    values = {column.key: getattr(upload, column.key) for column in UploadSession.__table__.columns}
    statement = (
        insert(UploadSession)
        .values(values)
        .on_conflict_do_nothing(
            index_elements=[UploadSession.owner_kind, UploadSession.owner_id, UploadSession.client_session_id],
            # A literal, as in the index: a bound parameter would not let PostgreSQL match the partial index.
            index_where=text("status = 'open'"),
        )
        .returning(UploadSession.id)
    )
    if (await session.execute(statement)).scalar_one_or_none() is None:
        return False
    session.add_all(UploadFile(session_id=upload.id, kind=kind) for kind in kinds)
    await session.flush()
    return True


async def latest_for_client_session(
    session: AsyncSession, owner_kind: str, owner_id: int, client_session_id: str
) -> UploadSession | None:
    """The owner's session carrying the recorder's session id: the open one (there is at most one), else the
    newest."""
    statement = (
        select(UploadSession)
        .where(
            UploadSession.owner_kind == owner_kind,
            UploadSession.owner_id == owner_id,
            UploadSession.client_session_id == client_session_id,
        )
        .order_by((UploadSession.status == "open").desc(), UploadSession.created_at.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


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


def _lease_live() -> ColumnElement[bool]:
    return UploadFile.lease_until > func.now()


async def claim_file(
    session: AsyncSession, session_id: str, kind: str, token: uuid.UUID, lease_seconds: float
) -> UploadFile | None:
    """Lease the file to `token` when no live lease holds it (none, or one past its time: a writer that died);
    None when another writer holds it. The file's row is locked until this transaction ends."""
    statement = (
        update(UploadFile)
        .where(
            UploadFile.session_id == session_id,
            UploadFile.kind == kind,
            (UploadFile.writer_token.is_(None)) | (UploadFile.lease_until <= func.now()),
        )
        .values(writer_token=token, lease_until=_lease_end(lease_seconds), updated_at=func.now())
        .returning(UploadFile)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def get_file(session: AsyncSession, session_id: str, kind: str) -> UploadFile:
    statement = (
        select(UploadFile)
        .where(UploadFile.session_id == session_id, UploadFile.kind == kind)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def renew_lease(
    session: AsyncSession, session_id: str, kind: str, token: uuid.UUID, lease_seconds: float, received: int
) -> bool:
    """Extend `token`'s lease and record `received` durable bytes; False when the lease is no longer its own."""
    statement = (
        update(UploadFile)
        .where(UploadFile.session_id == session_id, UploadFile.kind == kind, UploadFile.writer_token == token)
        .values(lease_until=_lease_end(lease_seconds), received=received, updated_at=func.now())
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def release_lease(
    session: AsyncSession,
    session_id: str,
    kind: str,
    token: uuid.UUID,
    *,
    received: int,
    complete: bool,
    sha256: str | None,
) -> UploadFile | None:
    """End `token`'s lease, recording the file's state; None (nothing changed) when the lease is not its own."""
    statement = (
        update(UploadFile)
        .where(UploadFile.session_id == session_id, UploadFile.kind == kind, UploadFile.writer_token == token)
        .values(
            writer_token=None,
            lease_until=None,
            received=received,
            complete=complete,
            sha256=sha256,
            updated_at=func.now(),
        )
        .returning(UploadFile)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def leased_kinds(session: AsyncSession, session_id: str) -> list[str]:
    """The files of the session a writer holds now."""
    statement = select(UploadFile.kind).where(UploadFile.session_id == session_id, _lease_live())
    return list((await session.execute(statement)).scalars())


def _lease_end(lease_seconds: float) -> ColumnElement[datetime]:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds)


async def files_of(session: AsyncSession, session_id: str) -> dict[str, UploadFile]:
    statement = select(UploadFile).where(UploadFile.session_id == session_id).execution_options(populate_existing=True)
    return {file.kind: file for file in (await session.execute(statement)).scalars()}


async def set_file_state(
    session: AsyncSession, file: UploadFile, *, received: int, complete: bool, sha256: str | None, now: datetime
) -> None:
    file.received, file.complete, file.sha256, file.updated_at = received, complete, sha256, now
    await session.flush()


async def lock_expired_open_sessions(session: AsyncSession, now: datetime, limit: int) -> list[UploadSession]:
    """Open sessions past their expiry, skipping those a request holds (an upload still streaming: a file with a
    live lease, or a session row locked by a finish)."""
    streaming = select(UploadFile.session_id).where(UploadFile.session_id == UploadSession.id, _lease_live())
    statement = (
        select(UploadSession)
        .where(UploadSession.status == "open", UploadSession.expires_at <= now, ~streaming.exists())
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


class FailureKey(NamedTuple):
    day: date
    tenant: str | None
    reason: str


async def count_failures(session: AsyncSession, counts: Mapping[FailureKey, int]) -> None:
    """Add `counts` to the failure tally in one upsert. Rows go in key order, so transactions counting several at
    once (sweeps on two replicas) lock them in the same order instead of deadlocking."""
    ordered = sorted(
        counts.items(), key=lambda item: (item[0].day, item[0].tenant is not None, item[0].tenant or "", item[0].reason)
    )
    if not ordered:
        return
    rows = [{"day": key.day, "tenant": key.tenant, "reason": key.reason, "count": count} for key, count in ordered]
    statement = insert(UploadFailure).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[UploadFailure.day, UploadFailure.tenant, UploadFailure.reason],
        set_={"count": UploadFailure.count + statement.excluded["count"]},
    )
    await session.execute(statement)
