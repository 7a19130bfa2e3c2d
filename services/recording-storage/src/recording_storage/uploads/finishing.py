"""Finishing a session: its files checked, and the recording made visible with them in one transaction.

A hash object cannot be stored, so a video that arrived in several requests (resumed, or sent in pieces) is
hashed here by reading it once, under a lease like an upload's (`leases`) and with no transaction open.
Re-reading the received prefix at each resume instead would cost a client sending many pieces a read per piece
(quadratic).

Some outcomes change state and still answer an error (a checksum mismatch drops the video's bytes, and counts
among the day's failures): those are returned with the error rather than raised, so their transaction commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from mirante.bus.outbox import emit
from mirante.db import TransactionFactory
from mirante.web.errors import ApiError
from recording_storage import events
from recording_storage.config import Settings
from recording_storage.models import Recording, UploadFile, UploadSession
from recording_storage.recordings import repository as recordings_repository
from recording_storage.storage.base import Storage
from recording_storage.storage.keys import part_key, recording_key
from recording_storage.uploads import repository
from recording_storage.uploads.errors import (
    ChecksumMismatchError,
    MetadataNotJsonError,
    StoredDataLostError,
    UploadIncompleteError,
    UploadInProgressError,
)
from recording_storage.uploads.leases import Lease, LeaseLostError, release, release_quietly
from recording_storage.uploads.sessions import declared_size, open_session, owned_session, utc_day, utc_now


@dataclass
class Finished:
    """The recording made visible (and the partial data to remove once that is committed), or the error to answer
    with state that must still be committed (the bytes found bad were dropped)."""

    outcome: Recording | ApiError
    leftovers: list[str] = field(default_factory=list)


async def _stored_sha256(storage: Storage, key: str, size: int) -> str:
    hasher = hashlib.sha256()
    async for chunk in storage.read_range(key, 0, size):
        await asyncio.to_thread(hasher.update, chunk)
    return hasher.hexdigest()


async def _read_small(storage: Storage, key: str, size: int) -> bytes:
    return b"".join([chunk async for chunk in storage.read_range(key, 0, size)])


def _metadata_problem(document: bytes) -> str | None:
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError as error:
        return str(error).splitlines()[0]
    return None if isinstance(parsed, dict) else "it is not an object"


async def _drop_file(db: AsyncSession, storage: Storage, file: UploadFile) -> None:
    await storage.delete(part_key(file.session_id, file.kind))
    await repository.set_file_state(db, file, received=0, complete=False, sha256=None, now=utc_now())


async def finalize(
    transactions: TransactionFactory, caller: Principal, session_id: str, storage: Storage, settings: Settings
) -> Finished:
    """Check the files (sizes, the video's SHA-256, the metadata's JSON) and make the recording visible: its row
    and its files appear in one transaction. Finishing a finished session answers its recording again.

    A video that arrived in several requests has no digest yet and is read once to hash it, with no transaction
    or connection held (a file of several GB takes a while): the video is leased for the hash as an upload
    leases it, so no upload or other finish touches it meanwhile (they get 409 `upload_in_progress`), and the
    digest is recorded with the lease's release, so a finish that fails later never hashes it again.
    """
    async with transactions() as db:
        checked = await _checked_files(db, caller, session_id, storage)
        if isinstance(checked, Finished):
            return checked
        upload, video, metadata = checked
        if video.sha256 is not None:
            return await _make_visible(db, storage, upload, video, metadata)
        token = uuid.uuid4()
        began = time.monotonic()
        if await repository.claim_file(db, session_id, "video", token, settings.upload_lease_seconds) is None:
            raise UploadInProgressError("video", video.received, None, utc_now())
    lease = Lease(transactions, session_id, "video", token, settings.upload_lease_seconds, began)
    try:
        digest = await _hash_under_lease(storage, lease, video.received)
    except BaseException:
        await release_quietly(transactions, lease, (video.received, video.complete, None))
        raise
    if await release(transactions, lease, received=video.received, complete=True, sha256=digest) is None:
        raise UploadInProgressError("video", None, None, utc_now())
    async with transactions() as db:
        checked = await _checked_files(db, caller, session_id, storage)
        if isinstance(checked, Finished):
            return checked
        upload, video, metadata = checked
        if video.sha256 is None:
            # Another request reached the video between the hash and this transaction: try again.
            raise UploadInProgressError("video", video.received, None, utc_now())
        return await _make_visible(db, storage, upload, video, metadata)


async def _hash_under_lease(storage: Storage, lease: Lease, size: int) -> str:
    """The SHA-256 of the video's `size` stored bytes, its lease renewed every third of its length meanwhile
    (reading may stall, as sealing a multipart object can); `LeaseLostError` when another request took it."""
    hashing = asyncio.ensure_future(_stored_sha256(storage, part_key(lease.session_id, lease.kind), size))
    try:
        while True:
            done, _ = await asyncio.wait([hashing], timeout=max(lease.seconds / 3 - lease.age(), 0))
            if done:
                return hashing.result()
            await lease.renew(size)
    except LeaseLostError:
        raise UploadInProgressError(lease.kind, None, None, utc_now()) from None
    finally:
        if not hashing.done():
            hashing.cancel()
            await asyncio.wait([hashing])


async def _checked_files(
    db: AsyncSession, caller: Principal, session_id: str, storage: Storage
) -> Finished | tuple[UploadSession, UploadFile, UploadFile]:
    """With the session locked: its recording when finished already; else its files once each is complete, held
    by no request and in storage; an error to answer otherwise (raised, or returned when it changed state)."""
    existing = await owned_session(db, caller, session_id)
    if existing.status == "completed" and existing.recording_id is not None:
        recording = await recordings_repository.get(db, existing.recording_id)
        if recording is not None:
            return Finished(recording)
    upload = await open_session(db, caller, session_id, shared=False)
    leased = await repository.leased_kinds(db, session_id)
    if leased:
        busy = await repository.get_file(db, session_id, leased[0])
        raise UploadInProgressError(busy.kind, busy.received, busy.lease_until, utc_now())
    files = await repository.files_of(db, session_id)
    video, metadata = files["video"], files["metadata"]
    problems = {
        file.kind: {"received": file.received, "size": declared_size(upload, file.kind)}
        for file in (video, metadata)
        if not file.complete and (file.kind == "video" or _has_metadata(upload, metadata))
    }
    if problems:
        raise UploadIncompleteError(problems)

    for file in (video, metadata) if _has_metadata(upload, metadata) else (video,):
        held = await storage.size(part_key(session_id, file.kind)) or 0
        if held < file.received:
            await repository.set_file_state(db, file, received=held, complete=False, sha256=None, now=utc_now())
            return Finished(StoredDataLostError(file.kind, held))
    return upload, video, metadata


def _has_metadata(upload: UploadSession, metadata: UploadFile) -> bool:
    return metadata.received > 0 or bool(upload.metadata_size)


async def _refused(
    db: AsyncSession, upload: UploadSession, error: ChecksumMismatchError | MetadataNotJsonError
) -> Finished:
    """A finish refused for what the files hold, counted among today's failures under its error code."""
    await repository.count_failures(db, {repository.FailureKey(utc_day(utc_now()), upload.tenant, error.code): 1})
    return Finished(error)


async def _make_visible(
    db: AsyncSession, storage: Storage, upload: UploadSession, video: UploadFile, metadata: UploadFile
) -> Finished:
    """Check the video's digest and the metadata, then insert the recording, close the session and commit the
    files to the recording's keys, all in `db`'s transaction."""
    session_id = upload.id
    digest = video.sha256
    assert digest is not None
    if upload.video_sha256 is not None and digest != upload.video_sha256:
        await _drop_file(db, storage, video)
        return await _refused(db, upload, ChecksumMismatchError(upload.video_sha256, digest))
    has_metadata = _has_metadata(upload, metadata)
    video_key, metadata_key = part_key(session_id, "video"), part_key(session_id, "metadata")
    if has_metadata:
        problem = _metadata_problem(await _read_small(storage, metadata_key, metadata.received))
        if problem is not None:
            await _drop_file(db, storage, metadata)
            return await _refused(db, upload, MetadataNotJsonError(problem))

    now = utc_now()
    recording_id = uuid.uuid4()
    details = upload.details
    connection = details.get("connection_info") or {}
    start_time = (details.get("metadata") or {}).get("start_time")
    recording = Recording(
        id=recording_id,
        session_id=upload.id,
        client_session_id=upload.client_session_id,
        owner_kind=upload.owner_kind,
        owner_id=upload.owner_id,
        tenant=upload.tenant,
        wats_user=connection.get("wats_user"),
        wats_user_machine=connection.get("wats_user_machine"),
        wats_user_ip=connection.get("wats_user_ip"),
        server_name=connection.get("name"),
        server_ip=connection.get("ip"),
        server_user=connection.get("user"),
        connection_type=connection.get("connection_type"),
        con_codigo=connection.get("con_codigo"),
        start_time=datetime.fromisoformat(start_time) if start_time else None,
        details=details,
        video_key=recording_key(recording_id.hex, "video", now),
        video_size=video.received,
        video_sha256=digest,
        metadata_key=recording_key(recording_id.hex, "metadata", now) if has_metadata else None,
        metadata_size=metadata.received if has_metadata else None,
        created_at=now,
    )
    await recordings_repository.add(db, recording)
    upload.status, upload.finished_at, upload.recording_id = "completed", now, recording_id
    await emit(db, events.SCHEMA, events.upload_completed(recording))
    await db.flush()
    await storage.commit(video_key, recording.video_key)
    leftovers = [video_key]
    if recording.metadata_key is not None:
        await storage.commit(metadata_key, recording.metadata_key)
        leftovers.append(metadata_key)
    return Finished(recording, leftovers=leftovers)
