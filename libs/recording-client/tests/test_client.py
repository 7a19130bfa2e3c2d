"""RecordingUploadClient against the fake recording server: each call and the errors it maps."""

from __future__ import annotations

import hashlib
import socket

import pytest

from recording_client import (
    AuthenticationError,
    NetworkError,
    OffsetMismatchError,
    RecordingUploadClient,
    SessionExpiredError,
    ValidationError,
)
from recording_client.client import parse_upload_status


def session_body(size: int, **extra: object) -> dict[str, object]:
    return {
        "session_id": "rdp_1",
        "connection_info": {"name": "srv"},
        "file_size": size,
        "metadata": {"start_time": "2024-10-26T15:00:22", "recorder_settings": {}},
        **extra,
    }


async def test_full_cycle(fake_server, recording) -> None:
    video, metadata = recording
    size = video.stat().st_size
    seen: list[int] = []
    async with RecordingUploadClient(fake_server.base_url, fake_server.token, chunk_size=256 * 1024) as client:
        assert await client.test_connection()
        sha = hashlib.sha256(video.read_bytes()).hexdigest()
        session = await client.create_session(session_body(size, sha256=sha))
        assert (await client.get_status(session.session_id)).video.received == 0
        offset = await client.upload_file(session.video_upload_url, video, on_progress=seen.append)
        assert offset == size and seen[-1] == size and len(seen) == 12  # 3 MiB in 256 KiB chunks
        await client.upload_file(session.metadata_upload_url, metadata)
        status = await client.get_status(session.session_id)
        assert (status.video.received, status.video.size) == (size, size)
        assert status.metadata.received == metadata.stat().st_size
        recording_doc = await client.finalize(session.session_id)
        page = await client.list_recordings(wats_user="jefferson.silva")
        assert [r["id"] for r in page["results"]] == [recording_doc["id"]]
        assert (await client.get_recording(recording_doc["id"]))["upload_session_id"] == session.session_id
        await client.delete_recording(recording_doc["id"])
        with pytest.raises(ValidationError) as caught:
            await client.get_recording(recording_doc["id"])
        assert caught.value.status_code == 404 and caught.value.code == "not_found"
    # Relative upload URLs are resolved under base_url and carry the token.
    assert ("POST", "upload", 200) in fake_server.requests


async def test_offset_mismatch_names_the_servers_offset(fake_server, recording) -> None:
    _, metadata = recording
    async with RecordingUploadClient(fake_server.base_url, fake_server.token) as client:
        session = await client.create_session(session_body(10))
        await client.upload_file(session.metadata_upload_url, metadata)
        with pytest.raises(OffsetMismatchError) as caught:
            await client.upload_file(session.metadata_upload_url, metadata, offset=0)
    assert caught.value.offset == metadata.stat().st_size and not caught.value.retriable


async def test_refusals_map_to_the_contracts_errors(fake_server) -> None:
    async with RecordingUploadClient(fake_server.base_url, "wrong") as client:
        with pytest.raises(AuthenticationError) as auth:
            await client.create_session(session_body(10))
    assert auth.value.status_code == 401 and not auth.value.retriable
    async with RecordingUploadClient(fake_server.base_url, fake_server.token) as client:
        with pytest.raises(ValidationError) as too_large:
            await client.create_session(session_body(fake_server.max_video_size + 1))
        assert too_large.value.status_code == 413 and too_large.value.code == "payload_too_large"
        with pytest.raises(SessionExpiredError):
            await client.get_status("../../etc/passwd")
    # The id travels as one escaped path segment, never as path steps.
    assert ("?", "status", 404) in fake_server.requests


async def test_a_timeout_is_a_retriable_network_error(fake_server) -> None:
    fake_server.inject("GET", "status", delay=1.0)
    async with RecordingUploadClient(fake_server.base_url, fake_server.token, timeout=0.2) as client:
        with pytest.raises(NetworkError, match="timed out") as caught:
            await client.get_status("upl_1")
    assert caught.value.retriable


async def test_connection_test_reports_an_unreachable_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with RecordingUploadClient(f"http://127.0.0.1:{port}/api/v1", "t", timeout=2) as client:
        assert not await client.test_connection()


def test_token_goes_only_to_the_servers_origin() -> None:
    client = RecordingUploadClient("http://storage.example:8005/api/v1", "secret")
    assert client._headers(client.url_for("uploads/x/file"))["Authorization"] == "Bearer secret"
    assert client.url_for("/api/v1/uploads/x/file") == "http://storage.example:8005/api/v1/uploads/x/file"
    assert "Authorization" not in client._headers("https://bucket.elsewhere.example/part?sig=1")


@pytest.mark.parametrize(
    "document",
    [
        {"video": {"received": 5, "size": 9}, "metadata": {"received": 1, "size": None}},
        {"files": {"video": {"bytes_received": 5, "declared_size": 9}, "metadata": {"bytes_received": 1}}},
        {"video_received": 5, "video_size": 9, "metadata_received": 1},
    ],
)
def test_status_shapes(document) -> None:
    status = parse_upload_status(document, "s")
    assert (status.video.received, status.video.size, status.metadata.received) == (5, 9, 1)
