"""Fixtures of the rtls-cambus tests: the app on this run's servers, a client on it, images to upload."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import httpx
import pytest
import pytest_asyncio

from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory
from rtls_cambus.config import Settings
from rtls_cambus.main import create_app


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    return Settings(
        infra=infra_settings,
        floor_plan_max_bytes=64 * 1024,
        floor_plan_max_side_px=10_000,
        incident_attachment_max_bytes=4096,
        incident_rules_enabled=False,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_client: ClientFactory, settings: Settings) -> httpx.AsyncClient:
    return await make_client(create_app(settings))


def _png_bytes(width: int, height: int) -> bytes:
    """A PNG of `width` x `height` grey pixels; past a million pixels only the header is true (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height)) if width * height <= 1_000_000 else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG up to its frame header: what the size check reads."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


ImageMaker = Callable[[int, int], bytes]


@pytest.fixture
def make_png() -> ImageMaker:
    return _png_bytes


@pytest.fixture
def make_jpeg() -> ImageMaker:
    return _jpeg_header
