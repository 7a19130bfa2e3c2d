"""What every step of an upload asks of its session: the caller's own, still open, how large each file may be."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from recording_storage.config import Settings
from recording_storage.models import UploadSession
from recording_storage.uploads import repository
from recording_storage.uploads.errors import (
    SessionExpiredError,
    SessionFinishedError,
    SessionNotFoundError,
    UploadBusyError,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _owned_by(upload: UploadSession, caller: Principal) -> bool:
    return upload.owner_kind == caller.kind and upload.owner_id == caller.id


def is_expired(upload: UploadSession, now: datetime) -> bool:
    return upload.status == "expired" or (upload.status == "open" and upload.expires_at <= now)


def declared_size(upload: UploadSession, kind: str) -> int | None:
    return upload.video_size if kind == "video" else upload.metadata_size


def size_limit(upload: UploadSession, kind: str, settings: Settings) -> int:
    """The most bytes the file may have: its declared size, else the metadata cap."""
    declared = declared_size(upload, kind)
    return declared if declared is not None else settings.max_metadata_bytes


async def owned_session(db: AsyncSession, caller: Principal, session_id: str) -> UploadSession:
    upload = await repository.get_session(db, session_id)
    if upload is None or not _owned_by(upload, caller):
        raise SessionNotFoundError(session_id)
    return upload


async def open_session(db: AsyncSession, caller: Principal, session_id: str, *, shared: bool) -> UploadSession:
    """The caller's session, locked, and still taking data: 404, 409 (busy or finished) or 410 otherwise."""
    await owned_session(db, caller, session_id)
    try:
        upload = await repository.lock_session(db, session_id, shared=shared)
    except repository.LockBusyError:
        raise UploadBusyError(f"upload session {session_id!r}") from None
    if upload is None:
        raise SessionNotFoundError(session_id)
    if is_expired(upload, utc_now()):
        raise SessionExpiredError(session_id)
    if upload.status == "completed":
        raise SessionFinishedError(session_id, str(upload.recording_id))
    return upload
