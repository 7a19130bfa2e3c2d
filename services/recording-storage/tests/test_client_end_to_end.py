"""`recording_client` against the real recording-storage under uvicorn on 127.0.0.1, its API key sent as
`Authorization: Bearer`: a whole upload then list and a ranged download; an upload cut mid-file by a faulty
proxy and resumed by a restarted manager from its state file, sending only what the server lacks; a byte flipped
on the wire caught at finalize and sent again; an expired session replaced; a wrong token and a video over the
server's maximum failing at once; a body longer than declared refused with nothing of it kept; and the S3 backend
(moto's server) taking a cut upload in parts and serving it back."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.commands import create_api_key
from mirante.testing.browser import AppServer
from mirante.testing.proxy import FaultyProxy
from recording_client import AuthenticationError, RecordingUploadClient, UploadManager, ValidationError
from recording_client.clock import SystemClock
from recording_storage.config import Settings
from recording_storage.main import create_app

VIDEO_BYTES = 1_500_000
CHUNK = 64 * 1024
WAIT_STEPS = 600


class StalledClock(SystemClock):
    """Real time, but a retry's sleep never ends: the manager stays mid-upload until it is stopped."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


@pytest_asyncio.fixture
async def bearer_key(db_engine: AsyncEngine) -> str:
    """A committed API key that may upload and read recordings, as the recorder's config holds it."""
    async with AsyncSession(db_engine) as session, session.begin():
        _, plaintext = await create_api_key(
            session, f"rec-{uuid.uuid4().hex[:10]}", ["recordings:upload", "recordings:read"]
        )
    return plaintext


@pytest_asyncio.fixture
async def server(serve_app: AppServer, settings: Settings) -> str:
    return await serve_app(create_app(settings))


@pytest_asyncio.fixture
async def proxy(server: str) -> AsyncIterator[FaultyProxy]:
    async with FaultyProxy(urlsplit(server).port or 80) as running:
        yield running


def recording(folder: Path, machine: str, size: int = VIDEO_BYTES) -> tuple[Path, Path, bytes]:
    video = os.urandom(size)
    video_path = folder / f"rdp_{machine}.mp4"
    video_path.write_bytes(video)
    metadata_path = folder / f"rdp_{machine}_metadata.json"
    metadata_path.write_text(json.dumps({"session_id": f"rdp_{machine}", "wats_user_machine": machine}))
    return video_path, metadata_path, video


def session_info(machine: str) -> dict[str, Any]:
    return {
        "session_id": f"rdp_{machine}",
        "connection_info": {
            "con_codigo": 7,
            "ip": "10.0.0.7",
            "name": "Production Server",
            "user": "administrator",
            "connection_type": "RDP",
            "wats_user": "jefferson.silva",
            "wats_user_machine": machine,
            "wats_user_ip": "10.0.0.50",
        },
        "metadata": {"start_time": datetime.now().isoformat(), "recorder_settings": {"fps": 10, "quality": 23}},
    }


def manager(base: str, token: str, state: Path, **options: Any) -> UploadManager:
    client = RecordingUploadClient(f"{base}/api/v1", token, timeout=30, chunk_size=CHUNK)
    return UploadManager(client, state_path=state, max_retries=options.pop("max_retries", 5), **options)


async def _until(check: Any) -> None:
    for _ in range(WAIT_STEPS):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def _server_status(base: str, token: str, session_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        return await http.get(f"/api/v1/uploads/{session_id}/status")


async def _received_once_released(base: str, token: str, session_id: str) -> int:
    """The video bytes the server holds, once it has seen the end of a cut request (which holds the file)."""

    async def released() -> bool:
        return not (await _server_status(base, token, session_id)).json()["video"]["uploading"]

    await _until(released)
    received: int = (await _server_status(base, token, session_id)).json()["video"]["received"]
    return received


async def _interrupted(
    base: str, proxy: FaultyProxy, token: str, tmp_path: Path, machine: str, size: int = VIDEO_BYTES
) -> tuple[Any, ...]:
    """A manager whose upload is cut after about half the video, stopped while it waits to retry."""
    video_path, metadata_path, video = recording(tmp_path, machine, size)
    state = tmp_path / "state.json"
    first = manager(base, token, state, clock=StalledClock())
    await first.start()
    proxy.cut_after(size // 2)
    task_id = await first.upload_recording(video_path, metadata_path, session_info=session_info(machine))

    async def retrying() -> bool:
        return (first.get_upload_status(task_id) or {}).get("status") == "retrying"

    await _until(retrying)
    assert proxy.cuts == 1
    session_id = first.tasks[0].session["session_id"]
    await first.stop()
    await first.client.aclose()
    return video, state, task_id, session_id


async def _completed_by_a_new_manager(base: str, token: str, state: Path, task_id: str) -> tuple[Any, Any]:
    """A new manager on the same state file, run until idle: the task's final status (checked completed) and the
    task itself."""
    async with manager(base, token, state) as again:
        await again.wait_idle()
        status = again.get_upload_status(task_id)
        assert status is not None and status["status"] == "completed", status
        await again.client.aclose()
    return status, again.tasks[0]


async def test_a_whole_upload_is_listed_and_read_back_by_range(server: str, bearer_key: str, tmp_path: Path) -> None:
    machine = f"desk-{uuid.uuid4().hex[:8]}"
    video_path, metadata_path, video = recording(tmp_path, machine)
    completed: list[tuple[str, str]] = []
    async with manager(server, bearer_key, tmp_path / "state.json") as uploads:
        uploads.on_upload_completed = lambda task, file_id: completed.append((task, file_id))
        task_id = await uploads.upload_recording(video_path, metadata_path, session_info=session_info(machine))
        await uploads.wait_idle()
        assert uploads.get_queue_status()["completed_uploads"] == 1
        ((done_task, file_id),) = completed
        assert done_task == task_id

        page = await uploads.client.list_recordings(machine=machine, wats_user="jefferson.silva")
        assert [row["file_id"] for row in page["results"]] == [file_id]
        assert page["results"][0]["video_sha256"] == hashlib.sha256(video).hexdigest()
        await uploads.client.aclose()

    async with httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {bearer_key}"}) as http:
        part = await http.get(f"/api/v1/recordings/{file_id}/content", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == video[1000:2000]
        assert part.headers["Content-Range"] == f"bytes 1000-1999/{VIDEO_BYTES}"


async def test_a_cut_upload_resumes_after_a_restart_sending_only_what_is_missing(
    server: str, proxy: FaultyProxy, bearer_key: str, tmp_path: Path
) -> None:
    video, state, task_id, session_id = await _interrupted(
        proxy.url, proxy, bearer_key, tmp_path, f"desk-{uuid.uuid4().hex[:8]}"
    )
    held = await _received_once_released(server, bearer_key, session_id)
    assert 0 < held < VIDEO_BYTES

    sent_before = proxy.bytes_up
    status, task = await _completed_by_a_new_manager(proxy.url, bearer_key, state, task_id)
    assert task.sessions_opened == 1
    # The rest of the video, the metadata and a few small requests: never the received part again.
    assert proxy.bytes_up - sent_before < (VIDEO_BYTES - held) + 64 * 1024
    async with httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {bearer_key}"}) as http:
        content = await http.get(f"/api/v1/recordings/{status['server_file_id']}/content")
        assert content.content == video


async def test_a_byte_flipped_on_the_wire_is_caught_at_finalize_and_sent_again(
    server: str, proxy: FaultyProxy, bearer_key: str, tmp_path: Path
) -> None:
    machine = f"desk-{uuid.uuid4().hex[:8]}"
    video_path, metadata_path, video = recording(tmp_path, machine)
    proxy.flip_after(200_000)  # past the session's small requests, inside the video's body
    async with manager(proxy.url, bearer_key, tmp_path / "state.json") as uploads:
        task_id = await uploads.upload_recording(video_path, metadata_path, session_info=session_info(machine))
        await uploads.wait_idle()
        status = uploads.get_upload_status(task_id)
        assert status is not None and status["status"] == "completed", status
        await uploads.client.aclose()
    assert proxy.flips == 1
    async with httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {bearer_key}"}) as http:
        stored = (await http.get(f"/api/v1/recordings/{status['server_file_id']}")).json()
        assert stored["video_sha256"] == hashlib.sha256(video).hexdigest()


async def test_an_expired_session_is_replaced_by_a_new_one(
    server: str, proxy: FaultyProxy, bearer_key: str, tmp_path: Path, db_engine: AsyncEngine
) -> None:
    video, state, task_id, session_id = await _interrupted(
        proxy.url, proxy, bearer_key, tmp_path, f"desk-{uuid.uuid4().hex[:8]}"
    )
    async with db_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE recording_storage.upload_sessions SET expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": session_id},
        )
    assert (await _server_status(server, bearer_key, session_id)).status_code == 410

    status, task = await _completed_by_a_new_manager(server, bearer_key, state, task_id)
    assert task.session["session_id"] != session_id
    async with httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {bearer_key}"}) as http:
        stored = (await http.get(f"/api/v1/recordings/{status['server_file_id']}")).json()
        assert stored["video_sha256"] == hashlib.sha256(video).hexdigest()


async def _upload_failing_at_once(uploads: UploadManager, tmp_path: Path, machine: str) -> str:
    """Queue a recording of `machine` that the server refuses for good: it fails once, with no retry; the
    failure reported."""
    failures: list[str] = []
    uploads.on_upload_failed = lambda task, error: failures.append(error)
    video_path, metadata_path, _ = recording(tmp_path, machine)
    task_id = await uploads.upload_recording(video_path, metadata_path, session_info=session_info(machine))
    await uploads.wait_idle()
    status = uploads.get_upload_status(task_id)
    assert status is not None and status["status"] == "failed"
    assert status["retry_count"] == 0
    assert len(failures) == 1
    return failures[0]


async def test_a_wrong_token_fails_at_once_without_retries(server: str, tmp_path: Path) -> None:
    machine = f"desk-{uuid.uuid4().hex[:8]}"
    wrong = "mk_" + "a" * 8 + "_" + "b" * 43
    async with manager(server, wrong, tmp_path / "state.json", clock=StalledClock()) as uploads:
        await _upload_failing_at_once(uploads, tmp_path, machine)
        with pytest.raises(AuthenticationError) as refused:
            await uploads.client.create_session({**session_info(machine), "file_size": VIDEO_BYTES})
        assert refused.value.status_code == 401
        await uploads.client.aclose()


async def test_a_recording_over_the_servers_maximum_fails_at_once_as_invalid(
    serve_app: AppServer, settings: Settings, bearer_key: str, tmp_path: Path
) -> None:
    limit = VIDEO_BYTES - 1
    server = await serve_app(create_app(settings.model_copy(update={"max_video_bytes": limit})))
    machine = f"desk-{uuid.uuid4().hex[:8]}"
    async with manager(server, bearer_key, tmp_path / "state.json", clock=StalledClock()) as uploads:
        assert (await _upload_failing_at_once(uploads, tmp_path, machine)).startswith("413 file_too_large")
        with pytest.raises(ValidationError) as refused:
            await uploads.client.create_session({**session_info(machine), "file_size": VIDEO_BYTES})
        assert refused.value.status_code == 413
        assert refused.value.details["limit"] == limit
        assert (await uploads.client.list_recordings(machine=machine))["results"] == []
        await uploads.client.aclose()


async def test_a_body_longer_than_declared_is_refused_keeping_nothing_of_it(
    server: str, bearer_key: str, tmp_path: Path, storage_dir: Path
) -> None:
    machine = f"desk-{uuid.uuid4().hex[:8]}"
    _, _, video = recording(tmp_path, machine)
    raw = {"Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {bearer_key}"}) as http:
        created = await http.post(
            "/api/v1/uploads/create-session", json={**session_info(machine), "file_size": VIDEO_BYTES}
        )
        assert created.status_code == 201, created.text
        session_id, url = created.json()["session_id"], created.json()["video_upload_url"]
        assert (await http.post(url, content=video[:1000], headers={**raw, "Upload-Offset": "0"})).status_code == 200

        async def past_the_end() -> AsyncIterator[bytes]:
            # Many write buffers reach the disk before the last chunk goes past the declared size.
            for start in range(1000, VIDEO_BYTES, CHUNK):
                yield video[start : start + CHUNK]
            yield b"more than declared"

        refused = await http.post(url, content=past_the_end(), headers={**raw, "Upload-Offset": "1000"})
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "body_beyond_size"
    held = (await _server_status(server, bearer_key, session_id)).json()["video"]
    assert (held["received"], held["uploading"]) == (1000, False)
    assert (storage_dir / "uploads" / session_id / "video").stat().st_size == 1000


@pytest.mark.parametrize("backend", ["s3"])
async def test_the_s3_backend_resumes_a_cut_upload_and_serves_it_from_its_parts(
    server: str,
    proxy: FaultyProxy,
    bearer_key: str,
    tmp_path: Path,
    settings: Settings,
    moto_endpoint: str,
    db_engine: AsyncEngine,
) -> None:
    part = settings.s3_part_size_bytes
    size = 2 * part + 300_000  # two whole parts and the tail, which becomes the third
    video, state, task_id, session_id = await _interrupted(
        proxy.url, proxy, bearer_key, tmp_path, f"desk-{uuid.uuid4().hex[:8]}", size
    )
    held = await _received_once_released(server, bearer_key, session_id)
    assert part < held < size  # the first part went to S3 before the cut, the rest of what arrived to the tail

    status, task = await _completed_by_a_new_manager(proxy.url, bearer_key, state, task_id)
    assert task.sessions_opened == 1
    file_id = status["server_file_id"]
    async with httpx.AsyncClient(base_url=server, headers={"Authorization": f"Bearer {bearer_key}"}) as http:
        whole = await http.get(f"/api/v1/recordings/{file_id}/content")
        assert whole.content == video
        start, end = part - 10, part + 10
        across = await http.get(f"/api/v1/recordings/{file_id}/content", headers={"Range": f"bytes={start}-{end}"})
        assert across.status_code == 206
        assert across.content == video[start : end + 1]

    async with db_engine.connect() as connection:
        object_key = (
            await connection.execute(
                text(
                    "SELECT o.object_key FROM recording_storage.s3_objects o "
                    "JOIN recording_storage.recordings r ON o.key = r.video_key WHERE r.id = :id"
                ),
                {"id": file_id},
            )
        ).scalar_one()
    head = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").head_object(
        Bucket=settings.s3_bucket, Key=object_key
    )
    assert head["ContentLength"] == size
    assert head["ETag"].endswith('-3"')  # a multipart object of three parts
