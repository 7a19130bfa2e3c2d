"""Finding, reading and deleting recordings. A tenant-bound caller reaches only its tenant's recordings; others
answer 404 as if they did not exist (`mirante.auth.policy`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.policy import can_see, tenant_reach
from mirante.auth.principal import Principal
from mirante.bus.outbox import emit_many
from recording_storage import events
from recording_storage.models import Recording
from recording_storage.recordings import repository
from recording_storage.recordings.deps import ContentAccess, ContentKind, SignedGrant
from recording_storage.recordings.errors import RecordingFileMissingError, RecordingNotFoundError
from recording_storage.recordings.ranges import byte_range
from recording_storage.recordings.schemas import ContentUrl, RecordingFilterParams, RecordingRead
from recording_storage.recordings.signing import ContentUrlSigner
from recording_storage.storage.base import Storage

MEDIA_TYPES: Final = {"video": "video/mp4", "metadata": "application/json"}
EXTENSIONS: Final = {"video": "mp4", "metadata": "json"}


async def list_recordings(
    db: AsyncSession, caller: Principal, params: RecordingFilterParams, *, offset: int, limit: int
) -> tuple[list[RecordingRead], int]:
    reach = tenant_reach(caller)
    filters = repository.RecordingFilters(**params.model_dump(), tenant=reach, tenant_bound=reach is not None)
    recordings, count = await repository.list_recordings(db, filters, offset=offset, limit=limit)
    return [RecordingRead.of(recording) for recording in recordings], count


async def get_recording(db: AsyncSession, caller: Principal, recording_id: uuid.UUID) -> Recording:
    recording = await repository.get(db, recording_id)
    if recording is None or not can_see(caller, recording.tenant):
        raise RecordingNotFoundError(recording_id)
    return recording


async def issue_content_url(
    db: AsyncSession,
    caller: Principal,
    recording_id: uuid.UUID,
    kind: ContentKind,
    signer: ContentUrlSigner,
    base_url: str,
    now: datetime | None = None,
) -> ContentUrl:
    """A signed URL to the file for a caller who may read the recording (404 otherwise, as for reading)."""
    recording = await get_recording(db, caller, recording_id)
    if kind == "metadata" and recording.metadata_key is None:
        raise RecordingFileMissingError(recording_id, kind)
    moment = now or datetime.now(UTC)
    expires, signature = signer.issue(recording.id, kind, moment)
    query = urlencode({"file": kind, "expires": expires, "signature": signature})
    return ContentUrl(
        url=f"{base_url.rstrip('/')}/api/v1/recordings/{recording.id}/content?{query}",
        expires_at=datetime.fromtimestamp(expires, UTC),
        expires_in=expires - int(moment.timestamp()),
    )


async def _readable(db: AsyncSession, access: ContentAccess, recording_id: uuid.UUID) -> Recording:
    if isinstance(access, SignedGrant):
        # The grant was issued to a caller who could read the recording; it names the recording it opens.
        recording = await repository.get(db, access.recording_id)
        if recording is None or access.recording_id != recording_id:
            raise RecordingNotFoundError(recording_id)
        return recording
    return await get_recording(db, access, recording_id)


@dataclass
class Content:
    """What a content request answers: status, headers, and the bytes (none for 304)."""

    status_code: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes] | None = None
    media_type: str = "application/octet-stream"


def _etag(recording: Recording, kind: ContentKind) -> str:
    if kind == "video":
        return f'"{recording.video_sha256}"'
    return f'"{recording.id.hex}-metadata-{recording.metadata_size}"'


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = {value.strip().removeprefix("W/") for value in header.split(",")}
    return "*" in candidates or etag in candidates


async def open_content(
    db: AsyncSession,
    access: ContentAccess,
    recording_id: uuid.UUID,
    kind: ContentKind,
    *,
    range_header: str | None,
    if_range: str | None,
    if_none_match: str | None,
    download: bool,
    storage: Storage,
) -> Content:
    """The file's bytes, or the single range asked for (206), with its ETag; 304 when the client has it."""
    recording = await _readable(db, access, recording_id)
    key = recording.video_key if kind == "video" else recording.metadata_key
    size = recording.video_size if kind == "video" else recording.metadata_size
    if key is None or size is None:
        raise RecordingFileMissingError(recording_id, kind)
    etag = _etag(recording, kind)
    disposition = "attachment" if download else "inline"
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'{disposition}; filename="recording-{recording.id}.{EXTENSIONS[kind]}"',
    }
    if _matches(if_none_match, etag):
        return Content(304, headers)
    if if_range is not None and if_range.strip() != etag:
        range_header = None
    wanted = byte_range(range_header, size)
    headers["Content-Length"] = str(wanted.length)
    if wanted.partial:
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end - 1}/{size}"
    return Content(
        206 if wanted.partial else 200,
        headers,
        storage.read_range(key, wanted.start, wanted.end),
        media_type=MEDIA_TYPES[kind],
    )


def _keys(recording: Recording) -> list[str]:
    return [key for key in (recording.video_key, recording.metadata_key) if key is not None]


async def delete_recording(db: AsyncSession, caller: Principal, recording_id: uuid.UUID) -> list[str]:
    """Remove the recording's row (it stops being listed now); answers the storage keys to remove once committed,
    so a transaction that fails leaves the files with their row."""
    recording = await repository.lock(db, recording_id)
    if recording is None or not can_see(caller, recording.tenant):
        raise RecordingNotFoundError(recording_id)
    await emit_many(db, events.SCHEMA, [events.recording_deleted(recording, "deleted")])
    await repository.remove(db, [recording])
    return _keys(recording)


async def delete_older_than(db: AsyncSession, created_before: datetime, limit: int) -> tuple[int, list[str]]:
    """Retention: remove up to `limit` recordings uploaded before `created_before`; answers how many, and their
    storage keys to remove once committed."""
    recordings = await repository.lock_older_than(db, created_before, limit)
    if not recordings:
        return 0, []
    await emit_many(db, events.SCHEMA, [events.recording_deleted(recording, "retention") for recording in recordings])
    await repository.remove(db, recordings)
    return len(recordings), [key for recording in recordings for key in _keys(recording)]
