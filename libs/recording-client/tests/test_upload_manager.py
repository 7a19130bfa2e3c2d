"""UploadManager against the fake recording server: whole uploads, resuming after a restart, the retry policy,
new sessions, the bandwidth limit and the upload window (the last two on an injected clock)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from recording_client import RecordingUploadClient, UploadManager, UploadWindow

CHUNK = 64 * 1024


class StalledClock:
    """A clock whose sleeps never end: the manager freezes at its first wait, as if the process died there."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def monotonic(self) -> float:
        return 0.0

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


def make_manager(server: Any, state: Path, clock: Any, *, token: str | None = None, **kwargs: Any) -> UploadManager:
    client = RecordingUploadClient(server.base_url, token or server.token, chunk_size=CHUNK, timeout=10)
    return UploadManager(client, state_path=state, clock=clock, rng=random.Random(7), **kwargs)


async def wait_until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 10 s")


def server_file(server: Any, kind: str) -> bytes:
    finalized = [s for s in server.sessions.values() if s.finalized]
    assert len(finalized) == 1
    return (finalized[0].directory / kind).read_bytes()


async def test_whole_upload_with_callbacks(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    events: list[tuple[str, Any]] = []
    manager = make_manager(fake_server, tmp_path / "state.json", fake_clock)
    manager.on_upload_started = lambda task_id, name: events.append(("started", name))
    manager.on_upload_progress = lambda task_id, percent: events.append(("progress", percent))
    manager.on_upload_completed = lambda task_id, file_id: events.append(("completed", file_id))
    manager.on_upload_failed = lambda task_id, error: events.append(("failed", error))
    async with manager:
        task_id = await manager.upload_recording(video, metadata)
        assert await manager.upload_recording(video, metadata) == task_id  # queued once
        await manager.wait_idle()
        status = manager.get_upload_status(task_id)
        queue = manager.get_queue_status()

    assert status is not None
    assert status["status"] == "completed" and status["progress"] == 100
    assert status["server_file_id"] in fake_server.recordings
    assert queue == {"queue_size": 0, "active_uploads": 0, "completed_uploads": 1, "failed_uploads": 0}
    assert server_file(fake_server, "video") == video.read_bytes()
    assert server_file(fake_server, "metadata") == metadata.read_bytes()
    assert fake_server.wire_bytes("video") == video.stat().st_size
    session = next(iter(fake_server.sessions.values()))
    assert session.request["session_id"] == "rdp_123_1729950022"
    assert session.request["connection_info"]["wats_user"] == "jefferson.silva"
    assert session.request["metadata"]["recorder_settings"] == {"fps": 10, "quality": 23}
    assert session.request["sha256"] == __import__("hashlib").sha256(video.read_bytes()).hexdigest()
    assert events[0] == ("started", video.name)
    percents = [value for name, value in events if name == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100
    assert events[-1] == ("completed", status["server_file_id"])
    assert fake_clock.sleeps == []


async def test_resumes_after_restart_sending_only_missing_bytes(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    state = tmp_path / "state.json"
    size = video.stat().st_size
    cut = 1_000_000
    fake_server.inject("POST", "upload", kind="video", drop_after=cut)
    first = make_manager(fake_server, state, StalledClock(fake_clock.now()))
    await first.start()
    task_id = await first.upload_recording(video, metadata)
    # The connection breaks mid-body; the manager is left in its backoff wait, then the process "dies".
    await wait_until(lambda: first.get_upload_status(task_id)["status"] == "retrying")
    await first.stop()
    saved = json.loads(state.read_text())["tasks"][task_id]
    assert saved["status"] == "retrying" and saved["session"]["session_id"]

    second = make_manager(fake_server, state, fake_clock)
    async with second:
        await second.wait_idle()
        assert second.get_upload_status(task_id)["status"] == "completed"

    assert fake_server.count("POST", "create") == 1
    video_uploads = [u for u in fake_server.uploads if u.kind == "video"]
    assert [(u.offset, u.stored) for u in video_uploads] == [(0, cut), (cut, size - cut)]
    assert fake_server.wire_bytes("video") == size
    assert server_file(fake_server, "video") == video.read_bytes()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retriable_statuses_are_retried(fake_server, fake_clock, recording, tmp_path, status) -> None:
    video, metadata = recording
    fake_server.inject("POST", "upload", kind="video", status=status)
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        result = manager.get_upload_status(task_id)
    assert result["status"] == "completed"
    assert len(fake_clock.sleeps) == 1 and 0 <= fake_clock.sleeps[0] <= 1
    assert ("POST", "upload", status) in fake_server.requests


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
async def test_refusals_are_not_retried(fake_server, fake_clock, recording, tmp_path, status) -> None:
    video, metadata = recording
    fake_server.inject("POST", "upload", kind="video", status=status)
    failures: list[str] = []
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        manager.on_upload_failed = lambda task_id, error: failures.append(error)
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        result = manager.get_upload_status(task_id)
        assert manager.get_queue_status()["failed_uploads"] == 1
    assert result["status"] == "failed"
    assert failures == [result["error"]] and str(status) in result["error"]
    assert fake_clock.sleeps == []
    assert fake_server.count("POST", "upload") == 1


async def test_wrong_token_fails_at_once(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock, token="wrong") as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        result = manager.get_upload_status(task_id)
    assert result["status"] == "failed" and "401" in result["error"]
    assert fake_server.requests == [("POST", "create", 401)]


async def test_retry_after_is_honoured_and_retries_run_out(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    fake_server.inject("GET", "status", status=503, headers={"Retry-After": "7"}, times=10)
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock, max_retries=2) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        result = manager.get_upload_status(task_id)
    assert result["status"] == "failed" and "503" in result["error"]
    assert len(fake_clock.sleeps) == 2 and all(delay >= 7 for delay in fake_clock.sleeps)
    assert fake_server.count("GET", "status") == 3


async def test_offset_conflict_continues_from_the_servers_offset(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    fake_server.inject("POST", "upload", kind="video", status=409, headers={"Upload-Offset": "0"})
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        assert manager.get_upload_status(task_id)["status"] == "completed"
    assert fake_clock.sleeps == []  # a conflict is not a failure: no backoff
    assert server_file(fake_server, "video") == video.read_bytes()


async def test_expired_session_starts_a_new_one(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    fake_server.inject("POST", "upload", kind="video", drop_after=500_000)
    # The status read before the retry finds the session expired (410).
    fake_server.inject("GET", "status", expire=True, skip=1)
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        assert manager.get_upload_status(task_id)["status"] == "completed"
    assert fake_server.count("POST", "create") == 2
    assert ("?", "status", 410) in fake_server.requests
    assert server_file(fake_server, "video") == video.read_bytes()


async def test_lost_finalize_answer_does_not_upload_twice(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    fake_server.inject("POST", "finalize", drop_answer=True)
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        result = manager.get_upload_status(task_id)
    assert result["status"] == "completed" and result["server_file_id"] in fake_server.recordings
    assert fake_server.count("POST", "create") == 1 and len(fake_server.recordings) == 1
    assert fake_server.wire_bytes("video") == video.stat().st_size


async def test_queueing_needs_a_started_manager(fake_server, fake_clock, recording, tmp_path) -> None:
    manager = make_manager(fake_server, tmp_path / "state.json", fake_clock)
    with pytest.raises(RuntimeError, match="start"):
        await manager.upload_recording(recording[0], recording[1])


async def test_corrupt_upload_is_sent_again_in_a_new_session(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    fake_server.inject("POST", "finalize", status=422)
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        assert manager.get_upload_status(task_id)["status"] == "completed"
    assert fake_server.count("POST", "create") == 2


async def test_bandwidth_limit_on_the_injected_clock(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    rate = 256 * 1024
    fake_server.clock = fake_clock
    start = fake_clock.monotonic()
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock, bandwidth_limit=rate) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        assert manager.get_upload_status(task_id)["status"] == "completed"
    total = video.stat().st_size + metadata.stat().st_size
    assert fake_server.arrivals[-1][1] == total
    # At no moment had the server received more than the limit allows since the start.
    for moment, received in fake_server.arrivals:
        assert received <= rate * (moment - start) + 1e-6
    assert (fake_clock.monotonic() - start) == pytest.approx(total / rate, rel=1e-6)


async def test_upload_window_is_waited_for_across_a_restart(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    window = UploadWindow.from_config({"start": "19:00", "end": "07:00", "all_day": ["sat", "sun"]})
    state = tmp_path / "state.json"
    fake_server.clock = fake_clock
    assert not window.is_open(fake_clock.now())  # Monday noon

    first = make_manager(fake_server, state, StalledClock(fake_clock.now()), upload_window=window)
    await first.start()
    task_id = await first.upload_recording(video, metadata)
    await wait_until(lambda: first.get_upload_status(task_id)["status"] == "waiting")
    await first.stop()
    assert fake_server.requests == []

    async with make_manager(fake_server, state, fake_clock, upload_window=window) as second:
        await second.wait_idle()
        assert second.get_upload_status(task_id)["status"] == "completed"
    assert fake_server.wall_times and all(window.is_open(moment) for moment in fake_server.wall_times)
    assert fake_server.wall_times[0] == fake_clock.now().replace(hour=19, minute=0)


async def test_window_closing_mid_upload_pauses_and_resumes(fake_server, clock_at, recording, tmp_path) -> None:
    video, metadata = recording
    window = UploadWindow.from_config({"start": "19:00", "end": "07:00"})
    clock = clock_at(datetime(2026, 3, 3, 6, 59, 55, tzinfo=UTC))
    fake_server.clock = clock
    # 3 MiB at 256 KiB/s takes 12 s: the window closes 5 s in.
    manager = make_manager(
        fake_server, tmp_path / "state.json", clock, upload_window=window, bandwidth_limit=256 * 1024
    )
    async with manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        assert manager.get_upload_status(task_id)["status"] == "completed"
    video_uploads = [u for u in fake_server.uploads if u.kind == "video"]
    assert len(video_uploads) == 2 and 0 < video_uploads[1].offset < video.stat().st_size
    assert all(window.is_open(moment) for moment in fake_server.wall_times)
    assert fake_server.wall_times[1].hour == 19
    assert fake_server.wire_bytes("video") == video.stat().st_size
    assert server_file(fake_server, "video") == video.read_bytes()


async def test_delete_after_upload(fake_server, fake_clock, recording, tmp_path) -> None:
    video, metadata = recording
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock, delete_after_upload=True) as manager:
        task_id = await manager.upload_recording(video, metadata)
        await manager.wait_idle()
        assert manager.get_upload_status(task_id)["status"] == "completed"
    assert not video.exists() and not metadata.exists()


async def test_older_recordings_in_a_folder(fake_server, fake_clock, tmp_path) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    now = time.time()

    def make(name: str, age_days: float, with_metadata: bool = True) -> Path:
        video = folder / f"{name}.mp4"
        video.write_bytes(name.encode() * 1000)
        if with_metadata:
            (folder / f"{name}_metadata.json").write_text(json.dumps({"session_id": name}))
        os.utime(video, (now - age_days * 86400, now - age_days * 86400))
        return video

    make("too_old", 40)
    make("older", 10)
    make("old", 2)
    make("no_metadata", 3, with_metadata=False)
    make("being_written", 0)
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        queued = await manager.upload_older_recordings(folder, max_age_days=30)
        await manager.wait_idle()
        assert await manager.upload_older_recordings(folder, max_age_days=30) == []  # already uploaded
        names = [manager.get_upload_status(task_id)["filename"] for task_id in queued]
    assert names == ["older.mp4", "old.mp4"]
    assert sorted(r["session_id"] for r in fake_server.recordings.values()) == ["old", "older"]


async def test_video_without_metadata_file_gets_one_written(fake_server, fake_clock, recording, tmp_path) -> None:
    video, _ = recording
    async with make_manager(fake_server, tmp_path / "state.json", fake_clock) as manager:
        task_id = await manager.upload_recording(video, session_info={"connection_info": {"name": "srv"}})
        await manager.wait_idle()
        assert manager.get_upload_status(task_id)["status"] == "completed"
    sent = json.loads(server_file(fake_server, "metadata"))
    assert sent["session_id"] == video.stem and sent["connection_info"] == {"name": "srv"}
    assert not list((tmp_path / "metadata").iterdir())
