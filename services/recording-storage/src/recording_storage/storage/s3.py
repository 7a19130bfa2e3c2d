"""The S3-compatible backend (aiobotocore): partial uploads are multipart uploads, their state is in Postgres.

Part mapping. S3 parts must be at least 5 MiB (but the last) and cannot be read back before the upload completes,
while clients send pieces of any size and may resume anywhere. So the bytes of a key are cut into fixed parts of
`part_size` whatever the requests were: a writer gathers up to one part in memory and sends it as the next part
(SHA-256 checksum on); what is left below a part when a request ends goes to a small staging object, the tail,
which the next request (on any replica) reads back and continues. A request thus costs at most one part-size
rewrite of the tail, never a re-read of the file. Each part's number, size, ETag and SHA-256 and the tail are
recorded in Postgres before the writer moves on, so the bytes held are known without asking S3.

Sealing. Reading a partial key (finalize hashes it) or committing it completes the multipart upload, the tail
sent as its last part, into an object under `objects/`; the object appears whole or not at all. Before completing,
every recorded part is checked against S3's list (size and ETag) and the assembled object's composite SHA-256
against the recorded parts. A part found changed makes the key's held bytes end before it: the upload continues
from there. Committing adds the final key as a second name of the same object (no copy); an object is deleted
with the last key naming it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final

from botocore.exceptions import ClientError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recording_storage.storage import s3_state
from recording_storage.storage.base import OffsetBeyondDataError, StorageError
from recording_storage.storage.s3_models import S3Object, S3Upload, S3UploadPart

READ_CHUNK_BYTES: Final = 256 * 1024
MIN_PART_BYTES: Final = 5 * 1024**2
MAX_PART_BYTES: Final = 5 * 1024**3
_MISSING: Final = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})

ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _composite_sha256(parts: list[S3UploadPart]) -> str:
    """S3's checksum of a multipart object: the SHA-256 of the parts' SHA-256 digests, base64."""
    return _b64(_sha256(b"".join(bytes.fromhex(part.sha256) for part in parts)))


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _MISSING


class S3PartWriter:
    """Appends to one key: whole parts go to S3 as they fill, the rest to the tail object on close."""

    def __init__(
        self,
        storage: S3Storage,
        key: str,
        upload: S3Upload | None = None,
        parts: int = 0,
        tail: bytes = b"",
        *,
        parts_bytes: int = 0,
        truncated: bool = False,
    ) -> None:
        self._storage = storage
        self._key = key
        self._upload = upload
        self._parts_at_open = parts
        self._next_number = parts + 1
        self._old_tail = (upload.tail_key, upload.tail_size, upload.tail_sha256) if upload is not None else None
        self._buffer = bytearray(tail)
        self._parts_bytes = parts_bytes
        self._durable_tail = len(tail)  # held by the old tail object until a part takes them over
        # A tail cut at the offset is written back on close even when nothing arrives, as a disk file is truncated.
        self._changed = truncated
        self._tail_cleared = False
        self._closed = False

    async def write(self, pieces: Sequence[bytes]) -> None:
        self._changed = True
        for piece in pieces:
            self._buffer += piece
        part_size = self._storage.part_size
        while len(self._buffer) >= part_size:
            part = bytes(self._buffer[:part_size])
            await self._send_part(part)
            del self._buffer[:part_size]

    async def _ensure_upload(self) -> S3Upload:
        upload = self._upload
        if upload is None:
            upload = await self._storage.new_upload_row(self._key)
            self._upload = upload
        if upload.upload_id is None:
            upload.upload_id = await self._storage.start_multipart(self._key, upload.object_key)
        return upload

    async def _send_part(self, data: bytes) -> None:
        upload = await self._ensure_upload()
        number = self._next_number
        digest = await asyncio.to_thread(_sha256, data)
        answer = await self._storage.client.upload_part(
            Bucket=self._storage.bucket,
            Key=upload.object_key,
            UploadId=upload.upload_id,
            PartNumber=number,
            Body=data,
            ChecksumSHA256=_b64(digest),
        )
        # The part holds the tail's bytes now: the tail leaves the row in the same transaction the part enters it.
        async with self._storage.transaction() as db:
            await s3_state.put_part(db, self._key, number, len(data), answer["ETag"], digest.hex())
            await s3_state.drop_parts_after(db, self._key, number)
            if not self._tail_cleared:
                await s3_state.set_tail(db, self._key, None, 0, None)
        self._tail_cleared = True
        self._durable_tail = 0
        self._parts_bytes += len(data)
        self._next_number += 1

    async def checkpoint(self) -> int:
        """Only recorded parts (and the tail a resume started from) are durable; the buffer is not, until it
        fills a part or the writer closes."""
        return self._parts_bytes + self._durable_tail

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._changed:
            return
        data = bytes(self._buffer)
        self._buffer = bytearray()
        if data:
            upload = self._upload or await self._storage.new_upload_row(self._key)
            await self._storage.put_tail(upload, data)
        elif self._upload is not None and not self._tail_cleared:
            async with self._storage.transaction() as db:
                await s3_state.set_tail(db, self._key, None, 0, None)
        if self._old_tail is not None and self._old_tail[0] is not None:
            await self._storage.remove_object(self._old_tail[0])

    async def discard(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        if self._upload is None or not self._changed:
            return
        # Parts sent by this writer stay in S3 unlisted (a later part of the same number replaces them, completion
        # uses only the listed ones); the old tail object was never removed, so the row can name it again.
        async with self._storage.transaction() as db:
            await s3_state.drop_parts_after(db, self._key, self._parts_at_open)
            if self._old_tail is not None:
                await s3_state.set_tail(db, self._key, *self._old_tail)


class SealedWriter:
    """The writer of a key already completed, opened at its end: it takes no more bytes."""

    def __init__(self, key: str, size: int) -> None:
        self._key = key
        self._size = size

    async def write(self, pieces: Sequence[bytes]) -> None:
        if any(pieces):
            raise StorageError(f"{self._key} is complete and takes no more bytes")

    async def checkpoint(self) -> int:
        return self._size

    async def close(self) -> None:
        return None

    async def discard(self) -> None:
        return None


class S3Storage:
    """Keys live in one bucket; the S3 client is opened on first use and closed by `aclose`."""

    def __init__(
        self,
        *,
        bucket: str,
        part_size: int,
        sessionmaker: async_sessionmaker[AsyncSession],
        client_factory: ClientFactory,
    ) -> None:
        if not MIN_PART_BYTES <= part_size <= MAX_PART_BYTES:
            raise ValueError(f"an S3 part is between {MIN_PART_BYTES} and {MAX_PART_BYTES} bytes")
        self.bucket = bucket
        self.part_size = part_size
        self._sessionmaker = sessionmaker
        self._client_factory = client_factory
        self._client: Any = None
        self._exit = AsyncExitStack()
        self._opening = asyncio.Lock()

    # -- plumbing --------------------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StorageError("the S3 client is not open")
        return self._client

    async def open(self) -> None:
        async with self._opening:
            if self._client is None:
                self._client = await self._exit.enter_async_context(self._client_factory())

    async def aclose(self) -> None:
        self._client = None
        await self._exit.aclose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a short transaction of the backend's own, committed when the block ends."""
        async with self._sessionmaker() as session, session.begin():
            yield session

    async def new_upload_row(self, key: str) -> S3Upload:
        async with self.transaction() as db:
            await s3_state.add_upload(db, key, f"objects/{uuid.uuid4().hex}")
            upload = await s3_state.get_upload(db, key)
        assert upload is not None
        return upload

    async def start_multipart(self, key: str, object_key: str) -> str:
        answer = await self.client.create_multipart_upload(
            Bucket=self.bucket, Key=object_key, ChecksumAlgorithm="SHA256"
        )
        upload_id: str = answer["UploadId"]
        async with self.transaction() as db:
            await s3_state.set_upload_id(db, key, upload_id)
        return upload_id

    async def put_tail(self, upload: S3Upload, data: bytes) -> None:
        """Write `data` as the key's tail under a new name, then point the row at it (a crash in between leaves
        the row on the old tail, still whole)."""
        digest = await asyncio.to_thread(_sha256, data)
        tail_key = f"staging/{upload.object_key.removeprefix('objects/')}/tail-{uuid.uuid4().hex[:12]}"
        await self.client.put_object(Bucket=self.bucket, Key=tail_key, Body=data, ChecksumSHA256=_b64(digest))
        async with self.transaction() as db:
            await s3_state.set_tail(db, upload.key, tail_key, len(data), digest.hex())

    async def remove_object(self, object_key: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except ClientError as error:
            if not _is_missing(error):
                raise StorageError(f"could not delete {object_key}: {error}") from error

    async def _read_tail(self, upload: S3Upload) -> bytes:
        if upload.tail_key is None or upload.tail_size == 0:
            return b""
        answer = await self.client.get_object(Bucket=self.bucket, Key=upload.tail_key)
        async with answer["Body"] as body:
            data: bytes = await body.read()
        if len(data) != upload.tail_size or (await asyncio.to_thread(_sha256, data)).hex() != upload.tail_sha256:
            raise _TailDamagedError
        return data

    async def _state(self, key: str) -> tuple[S3Object | None, S3Upload | None, list[S3UploadPart]]:
        async with self.transaction() as db:
            found = await s3_state.get_object(db, key)
            if found is not None:
                return found, None, []
            upload = await s3_state.get_upload(db, key)
            parts = await s3_state.parts_of(db, key) if upload is not None else []
        return None, upload, parts

    async def _truncate(self, upload: S3Upload, keep_parts: int) -> None:
        """Keep the first `keep_parts` parts and no tail."""
        async with self.transaction() as db:
            await s3_state.drop_parts_after(db, upload.key, keep_parts)
            await s3_state.set_tail(db, upload.key, None, 0, None)
        if upload.tail_key is not None:
            await self.remove_object(upload.tail_key)
        upload.tail_key, upload.tail_size, upload.tail_sha256 = None, 0, None

    # -- the Storage interface ---------------------------------------------------------------------------------------

    async def open_append(self, key: str, offset: int) -> S3PartWriter | SealedWriter:
        await self.open()
        found, upload, parts = await self._state(key)
        if offset == 0:
            if found is not None or upload is not None:
                await self.delete(key)
            return S3PartWriter(self, key)
        if found is not None:
            if offset == found.size:
                return SealedWriter(key, found.size)
            # A completed object cannot be appended to: the key starts over.
            await self.delete(key)
            raise OffsetBeyondDataError(key, offset, 0)
        if upload is None:
            raise OffsetBeyondDataError(key, offset, 0)
        parts_end = sum(part.size for part in parts)
        held = parts_end + upload.tail_size
        if offset > held:
            raise OffsetBeyondDataError(key, offset, held)
        if offset < parts_end:
            # A part cannot be read back, so the key goes back to the last part boundary not past the offset.
            kept, boundary = 0, 0
            while kept < len(parts) and boundary + parts[kept].size <= offset:
                boundary += parts[kept].size
                kept += 1
            await self._truncate(upload, kept)
            if boundary < offset:
                raise OffsetBeyondDataError(key, offset, boundary)
            return S3PartWriter(self, key, upload, kept, parts_bytes=boundary)
        try:
            tail = await self._read_tail(upload)
        except _TailDamagedError:
            await self._truncate(upload, len(parts))
            raise OffsetBeyondDataError(key, offset, parts_end) from None
        kept_tail = tail[: offset - parts_end]
        return S3PartWriter(
            self, key, upload, len(parts), kept_tail, parts_bytes=parts_end, truncated=len(kept_tail) < len(tail)
        )

    async def size(self, key: str) -> int | None:
        """The bytes held, checked against S3: a part or tail found changed or gone ends them before it."""
        await self.open()
        found, upload, parts = await self._state(key)
        if found is not None:
            try:
                await self.client.head_object(Bucket=self.bucket, Key=found.object_key)
            except ClientError as error:
                if not _is_missing(error):
                    raise StorageError(f"could not read {key}: {error}") from error
                async with self.transaction() as db:
                    await s3_state.delete_object_key(db, key)
                return None
            return found.size
        if upload is None:
            return None
        good = await self._verified_parts(upload, parts)
        if good < len(parts):
            await self._truncate(upload, good)
            return sum(part.size for part in parts[:good])
        if upload.tail_key is not None:
            try:
                head = await self.client.head_object(Bucket=self.bucket, Key=upload.tail_key)
                intact = head["ContentLength"] == upload.tail_size
            except ClientError as error:
                if not _is_missing(error):
                    raise StorageError(f"could not read {key}: {error}") from error
                intact = False
            if not intact:
                await self._truncate(upload, len(parts))
        return sum(part.size for part in parts) + upload.tail_size

    async def _verified_parts(self, upload: S3Upload, parts: list[S3UploadPart]) -> int:
        """How many of the recorded parts, from the first, S3 holds as they were sent (same size and ETag)."""
        if not parts or upload.upload_id is None:
            return 0
        listed: dict[int, tuple[int, str]] = {}
        marker = 0
        while True:
            page = {"PartNumberMarker": marker} if marker else {}
            try:
                answer = await self.client.list_parts(
                    Bucket=self.bucket, Key=upload.object_key, UploadId=upload.upload_id, **page
                )
            except ClientError as error:
                if _is_missing(error):
                    return 0
                raise StorageError(f"could not list the parts of {upload.key}: {error}") from error
            for item in answer.get("Parts", []):
                listed[int(item["PartNumber"])] = (int(item["Size"]), str(item["ETag"]))
            if not answer.get("IsTruncated"):
                break
            marker = int(answer["NextPartNumberMarker"])
        for index, part in enumerate(parts):
            if listed.get(part.number) != (part.size, part.etag):
                return index
        return len(parts)

    async def _seal(self, key: str, upload: S3Upload, parts: list[S3UploadPart]) -> S3Object:
        """Complete the upload (the tail as its last part) into its object, checked, and name it by `key`."""
        try:
            tail = await self._read_tail(upload)
        except _TailDamagedError:
            raise StorageError(f"{key}: the tail object is not the bytes recorded") from None
        size = sum(part.size for part in parts) + len(tail)
        listed = list(parts)
        if not parts and not tail:
            await self.client.put_object(Bucket=self.bucket, Key=upload.object_key, Body=b"")
        else:
            upload_id = upload.upload_id or await self.start_multipart(key, upload.object_key)
            if tail:
                digest = await asyncio.to_thread(_sha256, tail)
                number = len(parts) + 1
                answer = await self.client.upload_part(
                    Bucket=self.bucket,
                    Key=upload.object_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=tail,
                    ChecksumSHA256=_b64(digest),
                )
                listed.append(
                    S3UploadPart(key=key, number=number, size=len(tail), etag=answer["ETag"], sha256=digest.hex())
                )
            await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=upload.object_key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {
                            "PartNumber": part.number,
                            "ETag": part.etag,
                            "ChecksumSHA256": _b64(bytes.fromhex(part.sha256)),
                        }
                        for part in listed
                    ]
                },
            )
            head = await self.client.head_object(Bucket=self.bucket, Key=upload.object_key, ChecksumMode="ENABLED")
            checksum = head.get("ChecksumSHA256")
            composite = checksum.split("-")[0] if checksum else None
            if head["ContentLength"] != size or (composite is not None and composite != _composite_sha256(listed)):
                await self.remove_object(upload.object_key)
                raise StorageError(f"{key}: the completed object does not match the parts sent")
        async with self.transaction() as db:
            await s3_state.add_object(db, key, upload.object_key, size)
            await s3_state.delete_upload(db, key)
            sealed = await s3_state.get_object(db, key)
        if upload.tail_key is not None:
            await self.remove_object(upload.tail_key)
        assert sealed is not None
        return sealed

    async def _readable(self, key: str, start: int) -> tuple[str, int]:
        """The S3 object to read `key` from `start` on, and the offset of the key's byte 0 in it."""
        found, upload, parts = await self._state(key)
        if found is not None:
            return found.object_key, 0
        if upload is None:
            raise StorageError(f"{key} is not stored")
        parts_end = sum(part.size for part in parts)
        if start >= parts_end and upload.tail_key is not None:
            return upload.tail_key, -parts_end
        return (await self._seal(key, upload, parts)).object_key, 0

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        if end <= start:
            return
        await self.open()
        try:
            object_key, shift = await self._readable(key, start)
            answer = await self.client.get_object(
                Bucket=self.bucket, Key=object_key, Range=f"bytes={start + shift}-{end + shift - 1}"
            )
        except ClientError as error:
            raise StorageError(f"could not read {key}: {error}") from error
        remaining = end - start
        async with answer["Body"] as body:
            while remaining > 0:
                chunk: bytes = await body.read(min(READ_CHUNK_BYTES, remaining))
                if not chunk:
                    raise StorageError(f"{key} ended {remaining} bytes early")
                remaining -= len(chunk)
                yield chunk

    async def commit(self, part_key: str, final_key: str) -> None:
        await self.open()
        found, upload, parts = await self._state(part_key)
        if found is None:
            if upload is None:
                raise StorageError(f"{part_key} is not stored")
            try:
                found = await self._seal(part_key, upload, parts)
            except ClientError as error:
                raise StorageError(f"could not complete {part_key}: {error}") from error
        async with self.transaction() as db:
            await s3_state.add_object(db, final_key, found.object_key, found.size)

    async def delete(self, key: str) -> None:
        await self.open()
        async with self.transaction() as db:
            upload = await s3_state.get_upload(db, key, lock=True)
            if upload is not None:
                await s3_state.delete_upload(db, key)
            orphan = await s3_state.delete_object_key(db, key)
        # Rows go first: a crash between leaves bytes nobody names (a bucket lifecycle rule removes them), never a
        # row naming bytes that are gone.
        if upload is not None:
            if upload.upload_id is not None:
                with contextlib.suppress(ClientError):
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload.object_key, UploadId=upload.upload_id
                    )
            if upload.tail_key is not None:
                await self.remove_object(upload.tail_key)
        if orphan is not None:
            await self.remove_object(orphan)


class _TailDamagedError(Exception):
    """The tail object is not the bytes recorded for it."""
