"""The bytes of an upload request as they arrive: a raw body, or the first file part of a multipart form.

Nothing is spooled: a multipart body goes through python-multipart's callback parser chunk by chunk, and only the
file part's bytes are passed on (other fields are skipped). Each wait for the next chunk is bounded, so a
half-open connection ends instead of holding the file's lock forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from recording_storage.uploads.errors import MalformedMultipartError

MULTIPART_TYPE: Final = b"multipart/form-data"


class BodyIdleError(Exception):
    """Nothing arrived within the idle timeout."""


def is_multipart(content_type: str | None) -> bool:
    media_type, _ = parse_options_header(content_type or "")
    return media_type == MULTIPART_TYPE


async def raw_chunks(request: Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """The request body's chunks as the server receives them; `ClientDisconnect` when the client goes away."""
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BodyIdleError from None
        if chunk:
            yield chunk


class _FilePart:
    """Callbacks that keep the data of the first part carrying a file name (or the only part)."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.header_field = b""
        self.header_value = b""
        self.is_file = False
        self.taking = False
        self.done = False

    def on_part_begin(self) -> None:
        self.is_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self.header_value)
            self.is_file = b"filename" in options or options.get(b"name") in (b"file", b"video", b"metadata")
        self.header_field = self.header_value = b""

    def on_headers_finished(self) -> None:
        self.taking = self.is_file and not self.done

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.taking:
            self.pending.append(bytes(data[start:end]))

    def on_part_end(self) -> None:
        if self.taking:
            self.done = True
            self.taking = False


async def multipart_file_chunks(request: Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """The bytes of the form's file part (the first with a file name, or named file/video/metadata)."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedMultipartError("the Content-Type has no boundary")
    part = _FilePart()
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": part.on_part_begin,
                "on_header_field": part.on_header_field,
                "on_header_value": part.on_header_value,
                "on_header_end": part.on_header_end,
                "on_headers_finished": part.on_headers_finished,
                "on_part_data": part.on_part_data,
                "on_part_end": part.on_part_end,
            },
        )
    except FormParserError as error:
        raise MalformedMultipartError(str(error)) from None
    async for chunk in raw_chunks(request, idle_timeout):
        try:
            parser.write(chunk)
        except FormParserError as error:
            raise MalformedMultipartError(str(error)) from None
        if part.pending:
            pieces, part.pending = part.pending, []
            for piece in pieces:
                yield piece
    try:
        parser.finalize()
    except FormParserError as error:
        raise MalformedMultipartError(str(error)) from None
    if not part.done:
        raise MalformedMultipartError("no complete file part (send the file as a part with a filename)")


def body_chunks(request: Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """The file's bytes of an upload request, whatever way it was sent."""
    if is_multipart(request.headers.get("content-type")):
        return multipart_file_chunks(request, idle_timeout)
    return raw_chunks(request, idle_timeout)
