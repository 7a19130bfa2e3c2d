"""The web pages in headless Chromium against a real server: the recordings list and its filters, the player
streaming a real (tiny, generated) MP4 with Range through a signed URL, the upload statistics, and error and
empty states. The browser, pages and server come from the `mirante` plugin (`mirante.testing.browser`)."""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mirante.auth.commands import create_api_key, create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.browser import LiveServer, PageOpener
from mirante.testing.database import create_test_database, drop_test_database
from recording_storage.config import Settings
from recording_storage.main import create_app

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package")
expect = playwright_api.expect

# -- a tiny H.264 MP4 made here: no encoder needed ------------------------------------------------------------
# Every frame is one IDR slice whose macroblocks are all I_PCM (raw samples), which any H.264 decoder plays:
# the bitstream is headers plus bytes, so a few lines write it and no media file is shipped.


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        self.bits.extend((value >> shift) & 1 for shift in range(count - 1, -1, -1))

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() * 2 - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        while len(self.bits) % 8:
            self.bits.append(0)

    def trailing(self) -> None:
        self.bits.append(1)
        self.align_zero()

    def raw(self, data: bytes) -> None:
        for byte in data:
            self.u(8, byte)

    def payload(self) -> bytes:
        return bytes(int("".join(map(str, self.bits[start : start + 8])), 2) for start in range(0, len(self.bits), 8))


def _nal(header: int, rbsp: bytes) -> bytes:
    out = bytearray([header])
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


MATRIX = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def tiny_mp4(width: int = 64, height: int = 64, frames: int = 60, fps: int = 2) -> bytes:
    """A baseline-profile H.264 MP4 of `frames` frames (`moov` first), each frame a different flat grey."""
    mbs_wide, mbs_high = width // 16, height // 16
    sps_bits = _Bits()
    sps_bits.u(8, 66)  # baseline profile
    sps_bits.u(8, 0xC0)  # constraint_set0 and 1
    sps_bits.u(8, 30)  # level 3.0
    for value in (0, 0, 2, 1):  # sps id, log2_max_frame_num-4, poc type 2, max ref frames
        sps_bits.ue(value)
    sps_bits.u(1, 0)  # no frame num gaps
    sps_bits.ue(mbs_wide - 1)
    sps_bits.ue(mbs_high - 1)
    sps_bits.u(1, 1)  # frames only
    sps_bits.u(1, 1)  # direct 8x8 inference
    sps_bits.u(1, 0)  # no cropping
    sps_bits.u(1, 0)  # no VUI
    sps_bits.trailing()
    sps = _nal(0x67, sps_bits.payload())
    pps_bits = _Bits()
    for value in (0, 0):
        pps_bits.ue(value)
    pps_bits.u(1, 0)  # CAVLC
    pps_bits.u(1, 0)
    pps_bits.ue(0)  # one slice group
    pps_bits.ue(0)
    pps_bits.ue(0)
    pps_bits.u(1, 0)
    pps_bits.u(2, 0)
    for value in (0, 0, 0):
        pps_bits.se(value)
    pps_bits.u(3, 0)  # no deblocking control, constrained intra, redundant pic count
    pps_bits.trailing()
    pps = _nal(0x68, pps_bits.payload())

    samples = []
    for index in range(frames):
        slice_bits = _Bits()
        slice_bits.ue(0)  # first macroblock
        slice_bits.ue(7)  # I slice
        slice_bits.ue(0)  # pps id
        slice_bits.u(4, 0)  # frame_num
        slice_bits.ue(index % 2)  # idr_pic_id differs between neighbours
        slice_bits.u(1, 0)  # no_output_of_prior_pics
        slice_bits.u(1, 0)  # long_term_reference
        slice_bits.se(0)  # slice_qp_delta
        luma = bytes([16 + (index * 7) % 220]) * 256
        chroma = bytes([128]) * 128
        for _ in range(mbs_wide * mbs_high):
            slice_bits.ue(25)  # I_PCM
            slice_bits.align_zero()
            slice_bits.raw(luma + chroma)
        slice_bits.trailing()
        nal = _nal(0x65, slice_bits.payload())
        samples.append(struct.pack(">I", len(nal)) + nal)

    timescale, delta = fps * 100, 100
    duration = frames * delta
    avcc = _box(
        b"avcC",
        bytes([1, 66, 0xC0, 30, 0xFF, 0xE1]),
        struct.pack(">H", len(sps)),
        sps,
        bytes([1]),
        struct.pack(">H", len(pps)),
        pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HHIIIH", width, height, 0x00480000, 0x00480000, 0, 1),
        bytes(32),
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )

    def moov(chunk_offset: int) -> bytes:
        stbl = _box(
            b"stbl",
            _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
            _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, delta)),
            _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1)),
            _full_box(b"stsz", 0, 0, struct.pack(">II", 0, frames), *(struct.pack(">I", len(s)) for s in samples)),
            _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
        )
        minf = _box(
            b"minf",
            _full_box(b"vmhd", 0, 1, bytes(8)),
            _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
            stbl,
        )
        mdia = _box(
            b"mdia",
            _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0)),
            _full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"vide"), b"VideoHandler\0"),
            minf,
        )
        tkhd = _full_box(
            b"tkhd", 0, 3,
            struct.pack(">IIIII", 0, 0, 1, 0, duration), bytes(8), struct.pack(">hhhh", 0, 0, 0, 0), MATRIX,
            struct.pack(">II", width << 16, height << 16),
        )  # fmt: skip
        mvhd = _full_box(
            b"mvhd", 0, 0,
            struct.pack(">IIIIiH", 0, 0, timescale, duration, 0x00010000, 0x0100), bytes(10), MATRIX, bytes(24),
            struct.pack(">I", 2),
        )  # fmt: skip
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    offset = len(ftyp) + len(moov(0)) + 8
    return ftyp + moov(offset) + _box(b"mdat", *samples)


# -- a seeded server -----------------------------------------------------------------------------------------

PASSWORD = "pages-pass-1234"
MOVIE = tiny_mp4()
HOSTILE = '<img src=x onerror="window.__xss = 1">'


@dataclass
class Site:
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


def session_body(video: bytes, user: str, machine: str, server: str, start: str) -> dict[str, Any]:
    return {
        "session_id": f"rdp_{uuid.uuid4().hex[:8]}",
        "connection_info": {
            "con_codigo": 7,
            "ip": "10.1.2.3",
            "name": server,
            "user": "administrator",
            "connection_type": "RDP",
            "wats_user": user,
            "wats_user_machine": machine,
            "wats_user_ip": "10.9.9.9",
        },
        "file_size": len(video),
        "sha256": hashlib.sha256(video).hexdigest(),
        "metadata": {"start_time": start, "recorder_settings": {"fps": 2, "quality": 23}},
    }


async def upload(client: httpx.AsyncClient, key: dict[str, str], video: bytes, *args: str) -> str:
    created = (await client.post("/api/v1/uploads/create-session", json=session_body(video, *args), headers=key)).json()
    raw = {**key, "Content-Type": "application/octet-stream", "Upload-Offset": "0"}
    assert (await client.post(created["video_upload_url"], content=video, headers=raw)).status_code == 200
    assert (await client.post(created["metadata_upload_url"], content=b"{}", headers=raw)).status_code == 200
    finished = await client.post(f"/api/v1/uploads/{created['session_id']}/finalize", headers=key)
    assert finished.status_code == 200, finished.text
    return str(finished.json()["id"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(
    mirante_urls: StackUrls, migrated_template: str, infra_settings: InfraSettings, tmp_path_factory: Any
) -> AsyncIterator[Site]:
    database_url = await create_test_database(
        mirante_urls.database_url, prefix="recording_pages_test", template=migrated_template
    )
    site = Site()
    try:
        engine = create_engine(database_url)
        codec = TokenCodec.from_settings(infra_settings.jwt)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                for role in ("viewer", "operator"):
                    user = await create_user(
                        session, username=f"{role}-{uuid.uuid4().hex[:6]}", password=PASSWORD, role=role
                    )
                    site.tokens[role] = codec.issue(user.id, username=user.username, role=user.role).token
                _, plaintext = await create_api_key(session, "recorder", ["recordings:upload"])
        finally:
            await engine.dispose()
        infra = infra_settings.model_copy(
            update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)}
        )
        storage: Path = tmp_path_factory.mktemp("recording-pages")
        settings = Settings(infra=infra, storage_dir=storage, sweep_enabled=False)
        async with LiveServer(create_app(settings)) as server:
            site.url = server.url
            key = {"X-API-Key": plaintext}
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                site.ids["movie"] = await upload(
                    client, key, MOVIE, "alice", "PC-ALICE", "srv-a", "2025-03-03T10:00:00Z"
                )
                site.ids["bob"] = await upload(
                    client, key, os.urandom(2000), "bob", "PC-BOB", "srv-b", "2025-03-02T10:00:00Z"
                )
                site.ids["hostile"] = await upload(
                    client, key, os.urandom(2000), HOSTILE, "PC-X", "srv-b", "2025-03-01T10:00:00Z"
                )
            yield site
    finally:
        await drop_test_database(mirante_urls.database_url, database_url)


async def rows(page: Any) -> list[str]:
    return list(
        await page.locator("#recordings-body tr[data-recording-id]").evaluate_all(
            "rows => rows.map(row => row.dataset.recordingId)"
        )
    )


# -- the tests -----------------------------------------------------------------------------------------------


async def test_the_list_renders_and_filters(site: Site, open_page: PageOpener) -> None:
    page = await open_page(site.url, token=site.tokens["viewer"])
    await page.goto("/")
    newest_first = [site.ids["movie"], site.ids["bob"], site.ids["hostile"]]
    await expect(page.locator("#recordings-body tr[data-recording-id]")).to_have_count(3)
    assert await rows(page) == newest_first
    await expect(page.locator("#page-summary")).to_have_text("1\u20133 of 3 recordings")
    await expect(page.locator("#nav-statistics")).to_be_hidden()
    await expect(page.locator("#recordings-body")).to_contain_text(HOSTILE)
    assert await page.evaluate("window.__xss") is None

    await page.fill("#f-server", "srv-b")
    await page.click("#filters-apply")
    await expect(page.locator("#recordings-body tr[data-recording-id]")).to_have_count(2)
    await expect(page).to_have_url(f"{site.url}/?server=srv-b")
    await page.fill("#f-wats_user", "bob")
    await page.click("#filters-apply")
    await expect(page.locator("#recordings-body tr[data-recording-id]")).to_have_count(1)
    assert await rows(page) == [site.ids["bob"]]

    await page.fill("#f-wats_user", "")
    await page.fill("#f-server", "")
    await page.fill("#f-from", "2025-03-02")
    await page.fill("#f-until", "2025-03-02")
    await page.click("#filters-apply")
    await expect(page.locator("#recordings-body tr[data-recording-id]")).to_have_count(1)
    assert await rows(page) == [site.ids["bob"]]

    await page.fill("#f-machine", "NO-SUCH-PC")
    await page.click("#filters-apply")
    await expect(page.locator(".empty-state-title")).to_have_text("No recording matches these filters")
    await page.click(".empty-state button")
    await expect(page.locator("#recordings-body tr[data-recording-id]")).to_have_count(3)


async def test_the_player_streams_with_range_and_seeks(site: Site, open_page: PageOpener) -> None:
    page = await open_page(site.url, token=site.tokens["viewer"])
    answers: list[tuple[str | None, int]] = []

    async def on_response(response: Any) -> None:
        if "/content?" in response.url:
            answers.append((await response.request.header_value("range"), response.status))

    page.on("response", on_response)
    await page.goto(f"/recordings/{site.ids['movie']}")
    await expect(page.locator('[data-field="WATS user"]')).to_have_text("alice")
    await expect(page.locator('[data-field="Server"]')).to_have_text("srv-a")
    player = page.locator("#player")
    await expect(player).to_have_js_property("duration", 30)
    src = await player.evaluate("video => video.currentSrc")
    assert "signature=" in src and "expires=" in src

    await player.evaluate("video => { video.currentTime = 25; }")
    await expect(player).to_have_js_property("seeking", False)
    await expect(player).to_have_js_property("readyState", 4)
    assert await player.evaluate("video => video.currentTime") == 25
    assert await player.evaluate("video => video.videoWidth") == 64
    assert answers, "the video made no content request"
    assert all(range_header is not None and range_header.startswith("bytes=") for range_header, _ in answers)
    assert all(status == 206 for _, status in answers)
    download = await page.locator("#download").get_attribute("href")
    assert download is not None and download.endswith("&download=true")


async def test_the_statistics_show_for_operators_only(site: Site, open_page: PageOpener) -> None:
    page = await open_page(site.url, token=site.tokens["operator"])
    await page.goto("/statistics?days=7")
    await expect(page.locator('[data-stat="recordings"] .card-value')).to_have_text("3")
    await expect(page.locator('[data-stat="in-progress"] .card-value')).to_have_text("0")
    await expect(page.locator("#days-body tr[data-day]")).to_have_count(7)
    await expect(page.locator("#days-body tr[data-day]").first.locator(".recordings")).to_have_text("3")

    viewer = await open_page(site.url, token=site.tokens["viewer"])
    await viewer.goto("/statistics")
    await expect(viewer.locator("#page-state .page-state-title")).to_have_text("Not open to your account")
    await expect(viewer.locator("#statistics-view")).to_be_hidden()


async def test_unknown_recordings_and_signed_out_users(site: Site, open_page: PageOpener) -> None:
    page = await open_page(site.url, token=site.tokens["viewer"])
    await page.goto(f"/recordings/{uuid.uuid4()}")
    await expect(page.locator("#page-state .page-state-title")).to_have_text("Not found")
    await expect(page.locator("#player-view")).to_be_hidden()

    signed_out = await open_page(site.url)
    await signed_out.goto("/")
    await expect(signed_out).to_have_url(f"{site.url}/login?next=%2F")
