"""Upload sessions: creating them, reporting progress, expiring and purging them.

Receiving a file is `receiving`, finishing a session `finishing`; both work on a file under a lease (`leases`),
with no transaction open while data moves.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from mirante.bus.outbox import emit_many
from recording_storage import events
from recording_storage.config import Settings
from recording_storage.models import EXPIRED, UploadFile, UploadSession
from recording_storage.recordings import repository as recordings_repository
from recording_storage.storage.base import Storage
from recording_storage.storage.keys import FILE_KINDS, part_key
from recording_storage.uploads import repository
from recording_storage.uploads.errors import (
    DeclaredSizeTooLargeError,
    SessionExpiredError,
    SessionFinishedError,
    SessionIdInUseError,
    UploadBusyError,
)
from recording_storage.uploads.schemas import CreateSession, FileStatus, SessionCreated, SessionStatus
from recording_storage.uploads.sessions import declared_size, is_expired, owned_session, utc_day, utc_now

logger = logging.getLogger(__name__)


API_PREFIX: Final = "/api/v1"


def upload_urls(base_url: str, session_id: str) -> dict[str, str]:
    root = f"{base_url.rstrip('/')}{API_PREFIX}/uploads/{session_id}"
    return {
        "video_upload_url": f"{root}/file?kind=video",
        "metadata_upload_url": f"{root}/file?kind=metadata",
        "status_url": f"{root}/status",
        "finalize_url": f"{root}/finalize",
    }


async def create_session(
    db: AsyncSession, caller: Principal, body: CreateSession, storage: Storage, settings: Settings, base_url: str
) -> SessionCreated:
    """A new session for `caller`, after checking the declared sizes against the limits (413). Calls racing for
    the same recording open one session between them: the one whose insert lands first; the others answer it."""
    if body.file_size > settings.max_video_bytes:
        raise DeclaredSizeTooLargeError("the video", body.file_size, settings.max_video_bytes)
    if body.metadata_size is not None and body.metadata_size > settings.max_metadata_bytes:
        raise DeclaredSizeTooLargeError("the metadata file", body.metadata_size, settings.max_metadata_bytes)
    now = utc_now()
    previous = await repository.latest_for_client_session(db, caller.kind, caller.id, body.session_id)
    if previous is not None and previous.status == "open" and is_expired(previous, now):
        # Past its time but not swept yet: expire it now, so the new session may be the recording's open one.
        await _expire_now(db, storage, previous)
    elif previous is not None and not is_expired(previous, now):
        return _reused(previous, body, settings, base_url)
    if previous is None or previous.status == "expired":
        # A finished session's row goes some time after its recording appeared: the recording still answers.
        done = await recordings_repository.of_client_session(db, caller.kind, caller.id, body.session_id)
        if done is not None:
            raise SessionFinishedError(done.session_id, str(done.id))
    upload = UploadSession(
        id=f"ups_{uuid.uuid4().hex}",
        client_session_id=body.session_id,
        owner_kind=caller.kind,
        owner_id=caller.id,
        tenant=caller.tenant,
        status="open",
        video_size=body.file_size,
        video_sha256=body.sha256,
        metadata_size=body.metadata_size,
        details=body.details(),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.session_ttl_seconds),
        finished_at=None,
        recording_id=None,
    )
    if await repository.add_session(db, upload, FILE_KINDS):
        return _created(upload, settings, base_url)
    winner = await repository.latest_for_client_session(db, caller.kind, caller.id, body.session_id)
    if winner is None or is_expired(winner, now):
        raise UploadBusyError(f"the upload session of {body.session_id!r}")
    logger.info("create-session for %r raced another call; answering its session %s", body.session_id, winner.id)
    return _reused(winner, body, settings, base_url)


async def _expire_now(db: AsyncSession, storage: Storage, upload: UploadSession) -> None:
    """Expire one open session past its time, as the sweeper would; 409 while a request still holds it."""
    try:
        locked = await repository.lock_session(db, upload.id, shared=False)
    except repository.LockBusyError:
        raise UploadBusyError(f"the expired upload session {upload.id!r}") from None
    if locked is None or locked.status != "open":
        return
    if await repository.leased_kinds(db, upload.id):
        raise UploadBusyError(f"the expired upload session {upload.id!r}")
    await _expire(db, storage, [locked])


def _reused(previous: UploadSession, body: CreateSession, settings: Settings, base_url: str) -> SessionCreated:
    """Creating a session again for the same recording (the recorder's `session_id`, a retry whose answer was
    lost, a client that restarted) answers the session already open, as long as it declared the same file; a
    finished one is refused with its recording, and an expired one is replaced by a new session."""
    if previous.status == "completed":
        raise SessionFinishedError(previous.id, str(previous.recording_id))
    same_file = previous.video_size == body.file_size and previous.video_sha256 == body.sha256
    if not same_file or previous.metadata_size != body.metadata_size:
        raise SessionIdInUseError(body.session_id, previous.id)
    return _created(previous, settings, base_url)


def _created(upload: UploadSession, settings: Settings, base_url: str) -> SessionCreated:
    return SessionCreated(
        session_id=upload.id,
        expires_at=upload.expires_at,
        max_video_bytes=settings.max_video_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
        **upload_urls(settings.public_base_url or base_url, upload.id),
    )


def _file_status(upload: UploadSession, file: UploadFile, now: datetime) -> FileStatus:
    return FileStatus(
        received=file.received,
        size=declared_size(upload, file.kind),
        complete=file.complete,
        uploading=file.lease_until is not None and file.lease_until > now,
    )


async def session_status(db: AsyncSession, caller: Principal, session_id: str) -> SessionStatus:
    """How many bytes of each file arrived; 410 once the session expired."""
    upload = await owned_session(db, caller, session_id)
    now = utc_now()
    if is_expired(upload, now):
        raise SessionExpiredError(session_id)
    files = await repository.files_of(db, session_id)
    return SessionStatus(
        session_id=upload.id,
        client_session_id=upload.client_session_id,
        status=upload.status,
        expires_at=upload.expires_at,
        video=_file_status(upload, files["video"], now),
        metadata=_file_status(upload, files["metadata"], now),
        recording_id=str(upload.recording_id) if upload.recording_id else None,
    )


async def expire_sessions(db: AsyncSession, storage: Storage, now: datetime, limit: int) -> int:
    """Expire up to `limit` open sessions past their time: their partial data goes, their requests answer 410.

    Sessions an upload request still holds are skipped until it ends. The data is removed before the commit: a
    failed commit then leaves a session whose bytes are gone, which its next request notices, rather than files
    nobody will ever remove.
    """
    sessions = await repository.lock_expired_open_sessions(db, now, limit)
    await _expire(db, storage, sessions)
    return len(sessions)


async def _expire(db: AsyncSession, storage: Storage, sessions: list[UploadSession]) -> None:
    """Mark the sessions expired, drop their partial data, and count each as a failure on the day it expired."""
    expired = []
    for upload in sessions:
        files = await repository.files_of(db, upload.id)
        expired.append(events.upload_expired(upload, {kind: file.received for kind, file in files.items()}))
        for kind in FILE_KINDS:
            await storage.delete(part_key(upload.id, kind))
    await repository.mark_expired(db, [upload.id for upload in sessions])
    await repository.count_failures(
        db, Counter(repository.FailureKey(utc_day(upload.expires_at), upload.tenant, EXPIRED) for upload in sessions)
    )
    await emit_many(db, events.SCHEMA, expired)


async def purge_sessions(db: AsyncSession, storage: Storage, now: datetime, ttl: timedelta, limit: int) -> int:
    """Remove the rows of finished sessions past their expiry (and any partial file a failed cleanup left), and
    of expired sessions one more period later (until then their requests answer 410, not 404)."""
    sessions = await repository.lock_sessions_to_purge(db, finished_before=now, expired_before=now - ttl, limit=limit)
    for upload in sessions:
        for kind in FILE_KINDS:
            await storage.delete(part_key(upload.id, kind))
    await repository.delete_sessions(db, [upload.id for upload in sessions])
    return len(sessions)
