"""Upload sessions: creating them, appending to their files, reporting progress, and finishing them.

Leases, not locks, while a body streams: an upload request claims its file in a short transaction (a token and a
lease time on the file's row, taken only when no live lease holds it), streams the body with no transaction or
connection held, renews the lease every third of its length in short transactions (recording the bytes made
durable so far, so the status is truthful), and releases it in a last short transaction, also when the client
went away. So concurrent uploads are not capped by the connection pool and no transaction stays open for
minutes. A second request to the same file, and a finish, get 409 `upload_in_progress` while the lease lives.
A replica that dies mid-body leaves a lease that lapses; the next request takes the file over at the recorded
offset, and the bytes past it are dropped (they may never have reached the disk: only what a checkpoint made
durable is ever recorded). A writer never writes once its lease may have lapsed: it renews first, and stops if
the file was taken over.

Hashing: a request that starts a file at byte 0 hashes it as it is written; when it also finishes the file the
digest is kept and finishing reads nothing again. A hash object cannot be stored, so a file that arrived in
several requests (resumed, or sent in pieces) is hashed at finish by reading it once, under a lease like an
upload's and with no transaction open. Re-reading the received prefix at each resume instead would cost a client
sending many pieces a read per piece (quadratic).

Some outcomes change state and still answer an error (an idle body keeps what arrived; a checksum mismatch drops
the video's bytes): those are returned with the error rather than raised, so their transaction commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from mirante.auth.principal import Principal
from mirante.bus.outbox import emit, emit_many
from mirante.db import TransactionFactory
from mirante.types import INT64_MAX
from mirante.web.errors import ApiError
from recording_storage import events
from recording_storage.config import Settings
from recording_storage.models import Recording, UploadFile, UploadSession
from recording_storage.recordings import repository as recordings_repository
from recording_storage.storage.base import OffsetBeyondDataError, PartWriter, Storage
from recording_storage.storage.keys import FILE_KINDS, FileKind, part_key, recording_key
from recording_storage.uploads import repository
from recording_storage.uploads.body import BodyIdleError
from recording_storage.uploads.errors import (
    BodyBeyondSizeError,
    ChecksumMismatchError,
    DeclaredSizeTooLargeError,
    FileCompleteError,
    InvalidOffsetError,
    MetadataNotJsonError,
    OffsetMismatchError,
    SessionExpiredError,
    SessionFinishedError,
    SessionIdInUseError,
    SessionNotFoundError,
    StoredDataLostError,
    UploadBusyError,
    UploadIdleError,
    UploadIncompleteError,
    UploadInProgressError,
)
from recording_storage.uploads.schemas import CreateSession, FileReceipt, FileStatus, SessionCreated, SessionStatus

logger = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v1"
MAX_OFFSET_DIGITS: Final = 19
MAX_OFFSET: Final = INT64_MAX
"""The largest `Upload-Offset` (a `bigint`), as the API description declares it."""


def _now() -> datetime:
    return datetime.now(UTC)


def _owned_by(upload: UploadSession, caller: Principal) -> bool:
    return upload.owner_kind == caller.kind and upload.owner_id == caller.id


def _is_expired(upload: UploadSession, now: datetime) -> bool:
    return upload.status == "expired" or (upload.status == "open" and upload.expires_at <= now)


def declared_size(upload: UploadSession, kind: str) -> int | None:
    return upload.video_size if kind == "video" else upload.metadata_size


def size_limit(upload: UploadSession, kind: str, settings: Settings) -> int:
    """The most bytes the file may have: its declared size, else the metadata cap."""
    declared = declared_size(upload, kind)
    return declared if declared is not None else settings.max_metadata_bytes


# -- creating and reading sessions ---------------------------------------------------------------------------------


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
    now = _now()
    previous = await repository.latest_for_client_session(db, caller.kind, caller.id, body.session_id)
    if previous is not None and previous.status == "open" and _is_expired(previous, now):
        # Past its time but not swept yet: expire it now, so the new session may be the recording's open one.
        await _expire_now(db, storage, previous)
    elif previous is not None and not _is_expired(previous, now):
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
    if winner is None or _is_expired(winner, now):
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


async def _owned_session(db: AsyncSession, caller: Principal, session_id: str) -> UploadSession:
    upload = await repository.get_session(db, session_id)
    if upload is None or not _owned_by(upload, caller):
        raise SessionNotFoundError(session_id)
    return upload


def _file_status(upload: UploadSession, file: UploadFile, now: datetime) -> FileStatus:
    return FileStatus(
        received=file.received,
        size=declared_size(upload, file.kind),
        complete=file.complete,
        uploading=file.lease_until is not None and file.lease_until > now,
    )


async def session_status(db: AsyncSession, caller: Principal, session_id: str) -> SessionStatus:
    """How many bytes of each file arrived; 410 once the session expired."""
    upload = await _owned_session(db, caller, session_id)
    now = _now()
    if _is_expired(upload, now):
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


async def _open_session(db: AsyncSession, caller: Principal, session_id: str, *, shared: bool) -> UploadSession:
    """The caller's session, locked, and still taking data: 404, 409 (busy or finished) or 410 otherwise."""
    await _owned_session(db, caller, session_id)
    try:
        upload = await repository.lock_session(db, session_id, shared=shared)
    except repository.LockBusyError:
        raise UploadBusyError(f"upload session {session_id!r}") from None
    if upload is None:
        raise SessionNotFoundError(session_id)
    if _is_expired(upload, _now()):
        raise SessionExpiredError(session_id)
    if upload.status == "completed":
        raise SessionFinishedError(session_id, str(upload.recording_id))
    return upload


# -- receiving a file ----------------------------------------------------------------------------------------------


@dataclass
class UploadAnswer:
    """The file's state after a request, and the error to answer with while keeping that state."""

    receipt: FileReceipt
    error: ApiError | None = None


def parse_offset(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > MAX_OFFSET_DIGITS or int(text) > MAX_OFFSET:
        raise InvalidOffsetError(value)
    return int(text)


def _hash_pieces(hasher: Any, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)


@dataclass
class _Appender:
    """Gathers body chunks into buffers and stores each (written, and hashed alongside in another thread) while the
    next one arrives. The server stops reading the socket while the body is not taken (a few dozen KiB wait), so
    storing a buffer in turn with receiving would leave the connection idle for every write. At most one buffer is
    stored at a time, so memory stays at two buffers; a store is never cancelled halfway (`settle` waits for it)."""

    writer: PartWriter
    hasher: Any
    buffer_bytes: int
    written: int = 0
    durable: int = 0
    pending: list[bytes] = field(default_factory=list)
    pending_size: int = 0
    storing: asyncio.Future[None] | None = None
    storing_size: int = 0

    @property
    def total(self) -> int:
        return self.written + self.storing_size + self.pending_size

    async def add(self, chunk: bytes) -> None:
        self.pending.append(chunk)
        self.pending_size += len(chunk)
        if self.pending_size >= self.buffer_bytes:
            await self._wait_stored()
            self._store_pending()

    async def flush(self) -> None:
        """Store everything gathered, and wait until it is written."""
        await self._wait_stored()
        if self.pending:
            self._store_pending()
            await self._wait_stored()

    async def settle(self) -> None:
        """Wait for a store still running, whatever its outcome, before the writer is closed or discarded."""
        storing = self.storing
        if storing is not None:
            await asyncio.wait([storing])
            if not storing.cancelled():
                storing.exception()  # retrieved: the error that ended the request is already on its way

    def _store_pending(self) -> None:
        # The pieces go as they are (no join: one copy less of every byte on the event loop's thread).
        pieces, self.pending = self.pending, []
        self.storing = asyncio.ensure_future(self._store(pieces))
        self.storing_size, self.pending_size = self.pending_size, 0

    async def _store(self, pieces: list[bytes]) -> None:
        if self.hasher is None:
            await self.writer.write(pieces)
        else:
            await asyncio.gather(self.writer.write(pieces), asyncio.to_thread(_hash_pieces, self.hasher, pieces))

    async def _wait_stored(self) -> None:
        if self.storing is None:
            return
        # Shielded: a request cancelled here leaves the store running, and `settle` waits for it.
        await asyncio.shield(self.storing)
        self.storing = None
        self.written += self.storing_size
        self.storing_size = 0


class LeaseLostError(Exception):
    """The request's lease on its file lapsed and another request took the file over."""


@dataclass
class _Lease:
    """A request's claim on one file, renewed in short transactions; `renewed_at` is the local (monotonic) time
    the last claim or renewal began, so the lease surely lasts until `renewed_at + seconds` on any clock."""

    transactions: TransactionFactory
    session_id: str
    kind: str
    token: uuid.UUID
    seconds: float
    renewed_at: float

    def age(self) -> float:
        return time.monotonic() - self.renewed_at

    async def renew(self, received: int) -> None:
        started = time.monotonic()
        async with self.transactions() as db:
            held = await repository.renew_lease(db, self.session_id, self.kind, self.token, self.seconds, received)
        if not held:
            raise LeaseLostError
        self.renewed_at = started


async def _keep_lease(lease: _Lease, appender: _Appender, *, closing: bool = False) -> None:
    """Before writing: renew every third of the lease, recording the bytes made durable since (so the status
    stays truthful and a takeover resumes there). A request whose lease is two thirds gone (its body waited) first
    extends it from the last durable offset, so no byte is ever written while the lease might have lapsed; if
    another request took the file over meanwhile, `LeaseLostError` and nothing is written."""
    if lease.age() < lease.seconds / 3 and not closing:
        return
    if lease.age() >= lease.seconds * 2 / 3:
        await lease.renew(appender.durable)
    if closing:
        return
    await appender.flush()
    appender.durable = await appender.writer.checkpoint()
    await lease.renew(appender.durable)


async def _claim(
    transactions: TransactionFactory,
    caller: Principal,
    session_id: str,
    kind: FileKind,
    sent_offset: int | None,
    content_length: int | None,
    settings: Settings,
) -> tuple[UploadSession, UploadFile, uuid.UUID, float, int]:
    """In one short transaction: check the session and the offsets, and lease the file to a new token (409
    `upload_in_progress` when a live lease holds it). Answers the session, the file, the token, when the claim
    began (monotonic), and the most bytes the file may reach."""
    token = uuid.uuid4()
    began = time.monotonic()
    async with transactions() as db:
        upload = await _open_session(db, caller, session_id, shared=True)
        file = await repository.claim_file(db, session_id, kind, token, settings.upload_lease_seconds)
        if file is None:
            held = await repository.get_file(db, session_id, kind)
            raise UploadInProgressError(kind, held.received, held.lease_until, _now())
        offset = 0 if sent_offset is None else sent_offset
        if sent_offset is not None and sent_offset != file.received:
            raise OffsetMismatchError(kind, file.received, sent_offset)
        limit = size_limit(upload, kind, settings)
        if file.complete and sent_offset is not None:
            if content_length:
                raise FileCompleteError(kind, file.received)
            limit = file.received
        if content_length is not None and offset + content_length > limit:
            if declared_size(upload, kind) is None:
                raise DeclaredSizeTooLargeError(f"the {kind} file", offset + content_length, limit)
            raise BodyBeyondSizeError(kind, offset, limit)
        if offset < file.received:
            # Starting over: the bytes recorded so far are about to be overwritten.
            await repository.set_file_state(db, file, received=offset, complete=False, sha256=None, now=_now())
    return upload, file, token, began, limit


async def _release(
    transactions: TransactionFactory,
    lease: _Lease,
    *,
    received: int,
    complete: bool,
    sha256: str | None,
) -> UploadFile | None:
    async with transactions() as db:
        return await repository.release_lease(
            db, lease.session_id, lease.kind, lease.token, received=received, complete=complete, sha256=sha256
        )


async def receive_file(
    transactions: TransactionFactory,
    caller: Principal,
    session_id: str,
    kind: FileKind,
    chunks: AsyncIterator[bytes],
    *,
    offset_header: str | None,
    content_length: int | None,
    storage: Storage,
    settings: Settings,
) -> UploadAnswer:
    """Append the body to the file at `Upload-Offset` (none: start the file over), streaming it to storage.

    No transaction is open while the body streams: the file is leased in a short one, the lease is renewed in
    short ones as bytes arrive, and released in a last one (also when the client goes away). A body cut short
    (the client went away, or went idle) keeps what arrived; a body going past the file's size keeps nothing of
    this request (413).
    """
    sent_offset = parse_offset(offset_header)
    upload, file, token, began, limit = await _claim(
        transactions, caller, session_id, kind, sent_offset, content_length, settings
    )
    lease = _Lease(transactions, session_id, kind, token, settings.upload_lease_seconds, began)
    offset = 0 if sent_offset is None else sent_offset
    prior = (file.received, file.complete, file.sha256) if offset == file.received else (offset, False, None)

    key = part_key(session_id, kind)
    try:
        writer = await storage.open_append(key, offset)
    except OffsetBeyondDataError as error:
        released = await _release(transactions, lease, received=error.held, complete=False, sha256=None)
        return UploadAnswer(_receipt(upload, released or file), StoredDataLostError(kind, error.held))
    except BaseException:
        await _release_quietly(transactions, lease, prior)
        raise

    appender = _Appender(writer, hashlib.sha256() if offset == 0 else None, settings.write_buffer_bytes)
    appender.durable = offset
    ended_cleanly = False
    idle = False
    try:
        try:
            async for chunk in chunks:
                if offset + appender.total + len(chunk) > limit:
                    raise BodyBeyondSizeError(kind, offset, limit)
                await _keep_lease(lease, appender)
                await appender.add(chunk)
            ended_cleanly = True
        except ClientDisconnect:
            pass
        except BodyIdleError:
            idle = True
        await _keep_lease(lease, appender, closing=True)
        await appender.flush()
    except LeaseLostError:
        # Another request owns the file now: close without truncating what it may have written.
        await appender.settle()
        await writer.close()
        raise UploadInProgressError(kind, None, None, _now()) from None
    except BaseException:
        await appender.settle()
        await writer.discard()
        await _release_quietly(transactions, lease, prior)
        raise
    await writer.close()

    received = offset + appender.written
    declared = declared_size(upload, kind)
    complete = received == declared if declared is not None else ended_cleanly
    digest = appender.hasher.hexdigest() if complete and appender.hasher is not None else None
    if digest is None and complete and received == prior[0]:
        digest = prior[2]  # nothing arrived (an empty body at the end): the digest known before still holds
    released = await _release(transactions, lease, received=received, complete=complete, sha256=digest)
    if released is None:
        raise UploadInProgressError(kind, None, None, _now())
    stalled = UploadIdleError(kind, received, settings.upload_idle_timeout_seconds) if idle else None
    return UploadAnswer(_receipt(upload, released), stalled)


async def _release_quietly(
    transactions: TransactionFactory, lease: _Lease, state: tuple[int, bool, str | None]
) -> None:
    """Release after a failure, putting back the file's state from before this request; when even that fails
    the lease lapses on its own and the next request resumes from what is recorded."""
    received, complete, sha256 = state
    try:
        await _release(transactions, lease, received=received, complete=complete, sha256=sha256)
    except Exception:
        logger.exception("could not release the lease on the %s of upload session %s", lease.kind, lease.session_id)


def _receipt(upload: UploadSession, file: UploadFile) -> FileReceipt:
    return FileReceipt(
        session_id=upload.id,
        kind=file.kind,
        received=file.received,
        size=declared_size(upload, file.kind),
        complete=file.complete,
    )


# -- finishing -----------------------------------------------------------------------------------------------------


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
    await repository.set_file_state(db, file, received=0, complete=False, sha256=None, now=_now())


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
            raise UploadInProgressError("video", video.received, None, _now())
    lease = _Lease(transactions, session_id, "video", token, settings.upload_lease_seconds, began)
    try:
        digest = await _hash_under_lease(storage, lease, video.received)
    except BaseException:
        await _release_quietly(transactions, lease, (video.received, video.complete, None))
        raise
    if await _release(transactions, lease, received=video.received, complete=True, sha256=digest) is None:
        raise UploadInProgressError("video", None, None, _now())
    async with transactions() as db:
        checked = await _checked_files(db, caller, session_id, storage)
        if isinstance(checked, Finished):
            return checked
        upload, video, metadata = checked
        if video.sha256 is None:
            # Another request reached the video between the hash and this transaction: try again.
            raise UploadInProgressError("video", video.received, None, _now())
        return await _make_visible(db, storage, upload, video, metadata)


async def _hash_under_lease(storage: Storage, lease: _Lease, size: int) -> str:
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
        raise UploadInProgressError(lease.kind, None, None, _now()) from None
    finally:
        if not hashing.done():
            hashing.cancel()
            await asyncio.wait([hashing])


async def _checked_files(
    db: AsyncSession, caller: Principal, session_id: str, storage: Storage
) -> Finished | tuple[UploadSession, UploadFile, UploadFile]:
    """With the session locked: its recording when finished already; else its files once each is complete, held
    by no request and in storage; an error to answer otherwise (raised, or returned when it changed state)."""
    existing = await _owned_session(db, caller, session_id)
    if existing.status == "completed" and existing.recording_id is not None:
        recording = await recordings_repository.get(db, existing.recording_id)
        if recording is not None:
            return Finished(recording)
    upload = await _open_session(db, caller, session_id, shared=False)
    leased = await repository.leased_kinds(db, session_id)
    if leased:
        busy = await repository.get_file(db, session_id, leased[0])
        raise UploadInProgressError(busy.kind, busy.received, busy.lease_until, _now())
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
            await repository.set_file_state(db, file, received=held, complete=False, sha256=None, now=_now())
            return Finished(StoredDataLostError(file.kind, held))
    return upload, video, metadata


def _has_metadata(upload: UploadSession, metadata: UploadFile) -> bool:
    return metadata.received > 0 or bool(upload.metadata_size)


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
        return Finished(ChecksumMismatchError(upload.video_sha256, digest))
    has_metadata = _has_metadata(upload, metadata)
    video_key, metadata_key = part_key(session_id, "video"), part_key(session_id, "metadata")
    if has_metadata:
        problem = _metadata_problem(await _read_small(storage, metadata_key, metadata.received))
        if problem is not None:
            await _drop_file(db, storage, metadata)
            return Finished(MetadataNotJsonError(problem))

    now = _now()
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


# -- expiry --------------------------------------------------------------------------------------------------------


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
    expired = []
    for upload in sessions:
        files = await repository.files_of(db, upload.id)
        expired.append(events.upload_expired(upload, {kind: file.received for kind, file in files.items()}))
        for kind in FILE_KINDS:
            await storage.delete(part_key(upload.id, kind))
    await repository.mark_expired(db, [upload.id for upload in sessions])
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
