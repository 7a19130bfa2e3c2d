"""The local-disk backend: one file per key under a root folder; blocking calls run in worker threads.

Finishing is a hard link of the partial file to the recording's name (atomic, never replaces a file, and leaves
the partial file in place until the upload session is cleaned up, so a transaction that fails after the link
loses nothing). File systems without hard links get an atomic rename instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final

from recording_storage.storage.base import OffsetBeyondDataError, StorageError
from recording_storage.storage.keys import is_valid_key

READ_CHUNK_BYTES: Final = 256 * 1024
WRITEBACK_WINDOW_BYTES: Final = 8 * 1024 * 1024
"""How far behind the end of a file being written its pages are handed to the disk and dropped from memory."""
FILE_MODE: Final = 0o640
IOV_MAX: Final = 1024
"""Most buffers one `writev` takes (POSIX guarantees at least 16; Linux takes 1024)."""
_NO_LINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})


class LocalPartWriter:
    """Appends to one file through its descriptor, from the offset it was opened at."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._offset = offset
        self._written = 0
        self._closed = False

    @staticmethod
    def _write_all(fd: int, pieces: Sequence[bytes], end: int) -> None:
        views = [memoryview(piece) for piece in pieces if piece]
        first = 0
        while first < len(views):
            written = os.writev(fd, views[first : first + IOV_MAX])
            while written:
                if written >= len(views[first]):
                    written -= len(views[first])
                    first += 1
                else:
                    views[first] = views[first][written:]
                    written = 0
        # The recent pages start going to disk now and those already written back leave the page cache: the fsync
        # at a checkpoint or at close then has little left to wait for, and a large upload neither fills memory
        # nor keeps taking fresh pages (costly on virtual machines) while its own clean pages sit unused.
        start = max(0, end - WRITEBACK_WINDOW_BYTES)
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)

    async def write(self, pieces: Sequence[bytes]) -> None:
        size = sum(len(piece) for piece in pieces)
        end = self._offset + self._written + size
        await asyncio.to_thread(self._write_all, self._fd, pieces, end)
        self._written += size

    async def checkpoint(self) -> int:
        await asyncio.to_thread(os.fsync, self._fd)
        return self._offset + self._written

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        fd = self._fd

        def sync_and_close() -> None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        await asyncio.to_thread(sync_and_close)

    async def discard(self) -> None:
        if self._closed:
            return
        self._closed = True
        fd, offset = self._fd, self._offset

        def truncate_and_close() -> None:
            try:
                os.ftruncate(fd, offset)
            finally:
                os.close(fd)

        await asyncio.to_thread(truncate_and_close)


class LocalStorage:
    """Keys are paths relative to `root`; a key that is not one the server makes is refused."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        """The file of `key`, checked to be one of the server's key shapes and to lie under the root."""
        if not is_valid_key(key):
            raise StorageError(f"refusing storage key {key!r}")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"storage key {key!r} leaves the storage root")
        return path

    async def open_append(self, key: str, offset: int) -> LocalPartWriter:
        path = self.path(key)

        def open_at_offset() -> int:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
            try:
                held = os.fstat(fd).st_size
                if held < offset:
                    raise OffsetBeyondDataError(key, offset, held)
                if held > offset:
                    os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                raise
            return fd

        fd = await asyncio.to_thread(open_at_offset)
        return LocalPartWriter(fd, offset)

    async def size(self, key: str) -> int | None:
        path = self.path(key)

        def stat() -> int | None:
            try:
                return path.stat().st_size
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(stat)

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        path = self.path(key)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = end - start
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(READ_CHUNK_BYTES, remaining))
                if not chunk:
                    raise StorageError(f"{key} ended {remaining} bytes early")
                remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def commit(self, part_key: str, final_key: str) -> None:
        source, target = self.path(part_key), self.path(final_key)

        def link() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError as error:
                if error.errno not in _NO_LINKS:
                    raise
                source.replace(target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

        try:
            await asyncio.to_thread(link)
        except OSError as error:
            raise StorageError(f"could not commit {part_key} to {final_key}: {error.strerror}") from error

    async def delete(self, key: str) -> None:
        path = self.path(key)

        def remove() -> None:
            path.unlink(missing_ok=True)
            # The key's own folder (a session's, a recording's) goes once empty; shared month folders stay, so a
            # commit creating one never races with its removal.
            if path.parent != self.root:
                with contextlib.suppress(OSError):
                    path.parent.rmdir()

        await asyncio.to_thread(remove)
