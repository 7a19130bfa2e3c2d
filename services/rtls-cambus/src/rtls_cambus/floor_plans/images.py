"""What an uploaded floor plan is, read from its first bytes: the type and the pixel size, without decoding it.

Only PNG and JPEG are taken. The type comes from the magic bytes, never from the file name or the declared
content type. SVG is refused: it is a document that can carry scripts and links, and an image served as
`image/svg+xml` from the API's own origin would run them when opened directly. The pixel size comes from the
header (PNG's IHDR, JPEG's start-of-frame), so an image that claims absurd dimensions is refused before
anything decodes it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

PNG: Final = "image/png"
JPEG: Final = "image/jpeg"

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_JPEG_START: Final = b"\xff\xd8\xff"
# Start-of-frame markers carry the size; C4 (Huffman tables), C8 (reserved) and CC (arithmetic coding) do not.
_JPEG_FRAMES: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


class ImageRefusedError(ValueError):
    """The bytes are not an image this service takes; the message says why."""


def inspect_image(data: bytes) -> ImageInfo:
    """The type and size of a PNG or JPEG; `ImageRefusedError` for anything else or a header that makes no sense."""
    if data.startswith(_PNG_SIGNATURE):
        return _png(data)
    if data.startswith(_JPEG_START):
        return _jpeg(data)
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        raise ImageRefusedError("SVG floor plans are not accepted (they can carry scripts): export the plan as PNG")
    raise ImageRefusedError("the file is not a PNG or JPEG image (judged by its content, not its name)")


def _png(data: bytes) -> ImageInfo:
    # Signature, then the first chunk, which must be IHDR: length 13, type, width, height.
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageRefusedError("the PNG has no image header")
    width, height = struct.unpack(">II", data[16:24])
    return ImageInfo(PNG, width, height)


def _jpeg(data: bytes) -> ImageInfo:
    position = 2
    end = len(data)
    while position < end:
        if data[position] != 0xFF:
            raise ImageRefusedError("the JPEG is damaged before its frame header")
        while position < end and data[position] == 0xFF:
            position += 1
        if position >= end:
            break
        marker = data[position]
        position += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9 or position + 2 > end:
            break
        (length,) = struct.unpack(">H", data[position : position + 2])
        if length < 2:
            raise ImageRefusedError("the JPEG has a segment of impossible length")
        if marker in _JPEG_FRAMES:
            if position + 7 > end:
                break
            height, width = struct.unpack(">HH", data[position + 3 : position + 7])
            return ImageInfo(JPEG, width, height)
        position += length
    raise ImageRefusedError("the JPEG has no frame header giving its size")
