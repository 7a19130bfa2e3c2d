"""The stored live jobs, read in id order alongside a full sync's listing."""

from __future__ import annotations

import asyncio
import collections
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cvat_sync.sync import repository
from mirante.aio import cancel_and_wait

STORED_CHUNK = 2000


class StoredJobs:
    """The live stored jobs in ascending id order, read `STORED_CHUNK` at a time (keyset paging) and one chunk
    ahead, so a full sync can merge them with CVAT's id-ordered listing without waiting on the database."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.position = 0
        self._buffer: collections.deque[tuple[int, datetime | None]] = collections.deque()
        self._read_upto = 0
        self._exhausted = False
        self._reading: asyncio.Task[None] | None = None

    async def take_through(self, high: int) -> list[tuple[int, datetime | None]]:
        """`(id, cvat_updated_at)` of every stored live job with `position < id <= high`; moves to `high`."""
        taken: list[tuple[int, datetime | None]] = []
        while True:
            while self._buffer and self._buffer[0][0] <= high:
                taken.append(self._buffer.popleft())
            if self._buffer or (self._exhausted and self._reading is None):
                break
            await self._next_chunk()
        self.position = max(self.position, high)
        self._read_ahead()
        return taken

    async def take_chunk(self) -> list[tuple[int, datetime | None]]:
        """The next stored live jobs after `position` (at most a chunk or so); empty at the end."""
        if not self._buffer and not (self._exhausted and self._reading is None):
            await self._next_chunk()
        taken = list(self._buffer)
        self._buffer.clear()
        if taken:
            self.position = taken[-1][0]
        return taken

    async def close(self) -> None:
        """Cancel a read still under way (the sync stopped early)."""
        reading, self._reading = self._reading, None
        if reading is not None:
            await cancel_and_wait(reading)

    def _read_ahead(self) -> None:
        if self._reading is not None and self._reading.done():
            reading, self._reading = self._reading, None
            reading.result()
        if self._reading is None and not self._exhausted and len(self._buffer) < STORED_CHUNK // 2:
            self._reading = asyncio.create_task(self._read())

    async def _next_chunk(self) -> None:
        reading, self._reading = self._reading, None
        await (reading if reading is not None else self._read())

    async def _read(self) -> None:
        async with self.sessionmaker() as session:
            rows = await repository.live_versions_after(session, self._read_upto, STORED_CHUNK)
        self._exhausted = len(rows) < STORED_CHUNK
        if rows:
            self._read_upto = rows[-1][0]
            self._buffer.extend(rows)
