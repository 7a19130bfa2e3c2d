"""A TCP proxy on 127.0.0.1 that injects network faults between a client and a server started by a test.

`async with FaultyProxy(port) as proxy:` forwards every connection to `127.0.0.1:port`; point the client at
`proxy.url`. `proxy.cut_after(n)` arms one cut: once `n` more bytes went from clients to the server, that
connection is closed on both sides mid-stream (as a dropped link is: the client gets a transport error, the
server an end of its request body). `proxy.flip_after(n)` inverts the bits of the byte `n` bytes from now (a
corruption no checksum of the transport caught). `proxy.refuse = True` refuses new connections.
`proxy.bytes_up` counts every byte forwarded from clients to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

COPY_BYTES: Final = 64 * 1024


class FaultyProxy:
    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.bytes_up = 0
        self.cuts = 0
        self.refuse = False
        self.flips = 0
        self._cut_at: int | None = None
        self._flip_at: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, count: int) -> None:
        """Cut the connection carrying the `count`-th byte from now (client to server); one cut per call."""
        self._cut_at = self.bytes_up + count

    def flip_after(self, count: int) -> None:
        """Invert the byte `count` bytes from now (client to server); one byte per call."""
        self._flip_at = self.bytes_up + count

    def _flipped(self, data: bytes) -> bytes:
        if self._flip_at is None or not self.bytes_up <= self._flip_at < self.bytes_up + len(data):
            return data
        index = self._flip_at - self.bytes_up
        self._flip_at = None
        self.flips += 1
        return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]

    async def __aenter__(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self.refuse:
                return
            try:
                server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                return
            try:
                cut = asyncio.Event()
                up = asyncio.create_task(self._copy_up(client_reader, server_writer, cut))
                down = asyncio.create_task(self._copy(server_reader, client_writer))
                ended = asyncio.create_task(cut.wait())
                await asyncio.wait({up, down, ended}, return_when=asyncio.FIRST_COMPLETED)
                if cut.is_set():
                    for stream in (client_writer, server_writer):
                        stream.transport.abort()
                else:
                    # One side finished: let the other drain what it has, as a real link would.
                    await asyncio.wait({up, down})
                for pending in (up, down, ended):
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, OSError):
                        await pending
            finally:
                server_writer.close()
        finally:
            client_writer.close()
            self._connections.discard(task)

    async def _copy_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: asyncio.Event) -> None:
        while data := await reader.read(COPY_BYTES):
            data = self._flipped(data)
            if self._cut_at is not None and self.bytes_up + len(data) >= self._cut_at:
                data = data[: self._cut_at - self.bytes_up]
                self._cut_at = None
                self.bytes_up += len(data)
                writer.write(data)
                with contextlib.suppress(OSError):
                    await writer.drain()
                self.cuts += 1
                cut.set()
                return
            self.bytes_up += len(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(COPY_BYTES):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
