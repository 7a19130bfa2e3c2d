"""A lean HTTP/1.1 client for the benchmarks that measure an HTTP endpoint, and percentiles of latencies."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence


class Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads the answers.

    Hand-written rather than httpx: a general client costs more CPU per request than the bare endpoint it
    measures, and on a small machine that CPU is taken from the server under test.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        status = int((await self.reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def post_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of `POST path` with `body` and `headers`, ready for `Connection.exchange`."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` (0..1) percentile of `values` by the nearest-rank method; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]
