"""Receiving a file: a request's body appended to the file at its offset, streamed to storage under a lease
(`leases`) with no transaction open.

Hashing: a request that starts a file at byte 0 hashes it as it is written; when it also finishes the file the
digest is kept and finishing reads nothing again (a file that arrived in several requests is hashed at finish,
see `finishing`).

Some outcomes change state and still answer an error (an idle body keeps what arrived): those are returned with
the error rather than raised, so their transaction commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import ClientDisconnect

from mirante.auth.principal import Principal
from mirante.db import TransactionFactory
from mirante.types import INT64_MAX
from mirante.web.errors import ApiError
from recording_storage.config import Settings
from recording_storage.models import UploadFile, UploadSession
from recording_storage.storage.base import OffsetBeyondDataError, PartWriter, Storage
from recording_storage.storage.keys import FileKind, part_key
from recording_storage.uploads import repository
from recording_storage.uploads.body import BodyIdleError
from recording_storage.uploads.errors import (
    BodyBeyondSizeError,
    DeclaredSizeTooLargeError,
    FileCompleteError,
    InvalidOffsetError,
    OffsetMismatchError,
    StoredDataLostError,
    UploadIdleError,
    UploadInProgressError,
)
from recording_storage.uploads.leases import Lease, LeaseLostError, release, release_quietly
from recording_storage.uploads.schemas import FileReceipt
from recording_storage.uploads.sessions import declared_size, open_session, size_limit, utc_now

MAX_OFFSET_DIGITS: Final = 19
MAX_OFFSET: Final = INT64_MAX
"""The largest `Upload-Offset` (a `bigint`), as the API description declares it."""


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


@dataclass
class Appender:
    """Hashes body chunks as they arrive, gathers them into buffers and writes each in a worker thread while the
    next one arrives. The server stops reading the socket while the body is not taken (a few dozen KiB wait), so
    writing a buffer in turn with receiving would leave the connection idle for every write. At most one buffer is
    being written at a time, so memory stays at two buffers; a write is never cancelled halfway (`settle` waits for
    it).

    A chunk is hashed on the event loop's thread, just after the server copied it from the socket, while it is still
    in the core's cache: hashing whole buffers in a worker thread alongside the write cost 1.2 s of CPU per GiB here
    against 0.8 s, and the upload ran at 0.52 GiB/s against 0.62 (a 64 KiB chunk holds the loop for about 40 µs)."""

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
        if self.hasher is not None:
            self.hasher.update(chunk)
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
        await self.writer.write(pieces)

    async def _wait_stored(self) -> None:
        if self.storing is None:
            return
        # Shielded: a request cancelled here leaves the store running, and `settle` waits for it.
        await asyncio.shield(self.storing)
        self.storing = None
        self.written += self.storing_size
        self.storing_size = 0


async def _keep_lease(lease: Lease, appender: Appender, *, closing: bool = False) -> None:
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
        upload = await open_session(db, caller, session_id, shared=True)
        file = await repository.claim_file(db, session_id, kind, token, settings.upload_lease_seconds)
        if file is None:
            held = await repository.get_file(db, session_id, kind)
            raise UploadInProgressError(kind, held.received, held.lease_until, utc_now())
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
            await repository.set_file_state(db, file, received=offset, complete=False, sha256=None, now=utc_now())
    return upload, file, token, began, limit


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
    lease = Lease(transactions, session_id, kind, token, settings.upload_lease_seconds, began)
    offset = 0 if sent_offset is None else sent_offset
    prior = (file.received, file.complete, file.sha256) if offset == file.received else (offset, False, None)

    key = part_key(session_id, kind)
    try:
        writer = await storage.open_append(key, offset)
    except OffsetBeyondDataError as error:
        released = await release(transactions, lease, received=error.held, complete=False, sha256=None)
        return UploadAnswer(_receipt(upload, released or file), StoredDataLostError(kind, error.held))
    except BaseException:
        await release_quietly(transactions, lease, prior)
        raise

    appender = Appender(writer, hashlib.sha256() if offset == 0 else None, settings.write_buffer_bytes)
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
        raise UploadInProgressError(kind, None, None, utc_now()) from None
    except BaseException:
        await appender.settle()
        await writer.discard()
        await release_quietly(transactions, lease, prior)
        raise
    await writer.close()

    received = offset + appender.written
    declared = declared_size(upload, kind)
    complete = received == declared if declared is not None else ended_cleanly
    digest = appender.hasher.hexdigest() if complete and appender.hasher is not None else None
    if digest is None and complete and received == prior[0]:
        digest = prior[2]  # nothing arrived (an empty body at the end): the digest known before still holds
    released = await release(transactions, lease, received=received, complete=complete, sha256=digest)
    if released is None:
        raise UploadInProgressError(kind, None, None, utc_now())
    stalled = UploadIdleError(kind, received, settings.upload_idle_timeout_seconds) if idle else None
    return UploadAnswer(_receipt(upload, released), stalled)


def _receipt(upload: UploadSession, file: UploadFile) -> FileReceipt:
    return FileReceipt(
        session_id=upload.id,
        kind=file.kind,
        received=file.received,
        size=declared_size(upload, file.kind),
        complete=file.complete,
    )
