"""The storage interface the upload and recording features use, whatever keeps the bytes.

Keys are made by the server (`keys.py`), never taken from a client. A partial upload is appended to under its
own key; finishing commits it to the recording's key in one step, so a reader never sees half a recording.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol


class StorageError(Exception):
    """The backend failed (disk full, permissions, a key it refuses)."""


class OffsetBeyondDataError(StorageError):
    """Appending at an offset past the bytes the backend holds (they were lost): `held` is what it has."""

    def __init__(self, key: str, offset: int, held: int) -> None:
        super().__init__(f"{key}: asked to continue at {offset} but only {held} bytes are held")
        self.held = held


class PartWriter(Protocol):
    """Appends to one partial object from the offset it was opened at."""

    async def write(self, pieces: Sequence[bytes]) -> None:
        """Append the pieces, in order (as one buffer: a backend needs not join them)."""

    async def checkpoint(self) -> int:
        """Make what can be made durable so, without closing: the object's size (from its start) up to which its
        bytes survive a crash now. A backend that keeps data durable only in whole parts may answer less than was
        written; a resumed upload continues from the answer."""

    async def close(self) -> None:
        """Make what was written durable (it survives a crash once this returns)."""

    async def discard(self) -> None:
        """Drop everything written through this writer: the object is back to the offset it was opened at."""


class Storage(Protocol):
    """A place for partial uploads and recordings."""

    async def open_append(self, key: str, offset: int) -> PartWriter:
        """A writer continuing `key` at `offset`; bytes beyond `offset` (from an attempt never recorded) are
        dropped. `OffsetBeyondDataError` when fewer than `offset` bytes are held."""

    async def size(self, key: str) -> int | None:
        """Bytes held under `key`, None when there is nothing."""

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes `start` to `end` (exclusive) of `key`, in chunks."""

    async def commit(self, part_key: str, final_key: str) -> None:
        """Make the partial object `part_key` readable as `final_key`, atomically. `part_key` may stay until
        deleted (so a transaction that fails after this loses nothing)."""

    async def delete(self, key: str) -> None:
        """Remove `key`; nothing happens when it does not exist."""
