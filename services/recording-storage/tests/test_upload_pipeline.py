"""The appender behind upload requests: one buffer is stored while the next one arrives, in order, hashed as a whole;
a store is never cut halfway, and its failure reaches the request. The local writer takes the pieces unjoined."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from recording_storage.storage.keys import part_key
from recording_storage.storage.local import LocalStorage
from recording_storage.uploads.receiving import Appender

BUFFER = 4


async def _turns() -> None:
    """Let the event loop run what is ready (a store starts a few tasks deep)."""
    for _ in range(10):
        await asyncio.sleep(0)


class GatedWriter:
    """A part writer whose writes wait until the test lets them through."""

    def __init__(self, fail: bool = False) -> None:
        self.data = bytearray()
        self.gate = asyncio.Event()
        self.started = 0
        self.fail = fail

    async def write(self, pieces: Sequence[bytes]) -> None:
        self.started += 1
        await self.gate.wait()
        if self.fail:
            raise OSError("disk full")
        for piece in pieces:
            self.data += piece

    async def checkpoint(self) -> int:
        return len(self.data)

    async def close(self) -> None:
        return None

    async def discard(self) -> None:
        return None


async def test_the_next_buffer_is_gathered_while_one_is_stored() -> None:
    writer = GatedWriter()
    appender = Appender(writer, hashlib.sha256(), BUFFER)
    await appender.add(b"abcd")  # a full buffer: its store starts and the request goes on
    await _turns()
    assert writer.started == 1
    await appender.add(b"ef")
    await appender.add(b"g")  # still gathering while the first store waits
    assert appender.total == 7
    assert writer.data == b""

    waiting = asyncio.ensure_future(appender.add(b"h"))  # the second buffer is full: it waits for the first
    await _turns()
    assert not waiting.done()
    writer.gate.set()
    await waiting
    await appender.add(b"ij")
    await appender.flush()
    assert writer.data == b"abcdefghij"
    assert appender.written == appender.total == 10
    assert appender.hasher.hexdigest() == hashlib.sha256(b"abcdefghij").hexdigest()


async def test_a_cancelled_request_leaves_the_store_to_finish_before_the_writer_is_dropped() -> None:
    writer = GatedWriter()
    appender = Appender(writer, None, BUFFER)
    await appender.add(b"abcd")
    waiting = asyncio.ensure_future(appender.add(b"efgh"))
    await _turns()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    settled = asyncio.ensure_future(appender.settle())
    await _turns()
    assert not settled.done()  # the write still runs: the writer must not be closed under it
    writer.gate.set()
    await settled
    assert writer.data == b"abcd"


async def test_a_failed_store_reaches_the_request() -> None:
    writer = GatedWriter(fail=True)
    appender = Appender(writer, None, BUFFER)
    await appender.add(b"abcd")
    writer.gate.set()
    with pytest.raises(OSError, match="disk full"):
        await appender.flush()
    await appender.settle()
    assert appender.written == 0


async def test_the_local_writer_writes_many_small_pieces_in_order(tmp_path: Path) -> None:
    """More pieces than one `writev` takes, and pieces of every size, land in order."""
    storage = LocalStorage(tmp_path)
    key = part_key("ups_" + "a" * 32, "video")
    pieces = [bytes([index % 251]) * (index % 7) for index in range(5000)]
    writer = await storage.open_append(key, 0)
    await writer.write(pieces)
    await writer.write([b"tail"])
    await writer.close()
    assert storage.path(key).read_bytes() == b"".join(pieces) + b"tail"
