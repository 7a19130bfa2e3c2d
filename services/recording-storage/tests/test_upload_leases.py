"""Leases on files being uploaded, against the app under uvicorn with its own connections: bodies stream with no
connection held (three slow uploads on a pool of one), the recorded offset grows while bytes flow, a live lease
refuses a second writer with where the file stands, and a lapsed one (a replica that died mid-body) is taken over
at the recorded offset with whatever lay past it dropped."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.testing.browser import AppServer
from recording_storage.config import Settings
from recording_storage.main import create_app

VIDEO = os.urandom(300_000)
WAIT_STEPS = 400
OCTETS = {"Content-Type": "application/octet-stream"}


async def _create(http: httpx.AsyncClient, headers: dict[str, str], api: Any, video: bytes = VIDEO) -> dict[str, Any]:
    response = await http.post("/api/v1/uploads/create-session", json=api.session_body(video), headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _status(http: httpx.AsyncClient, sid: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await http.get(f"/api/v1/uploads/{sid}/status", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _until(check: Any) -> None:
    for _ in range(WAIT_STEPS):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def test_three_slow_uploads_share_a_pool_of_one_connection(
    serve_app: AppServer, settings: Settings, committed_key: dict[str, str], api: Any
) -> None:
    one = settings.infra.model_copy(
        update={"database": settings.infra.database.model_copy(update={"pool_size": 1, "max_overflow": 0})}
    )
    base = await serve_app(create_app(settings.model_copy(update={"infra": one})))
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield VIDEO[:1000]
        await release.wait()
        yield VIDEO[1000:]

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        sessions = [await _create(http, committed_key, api) for _ in range(3)]
        headers = {**committed_key, **OCTETS, "Upload-Offset": "0"}
        uploads = [
            asyncio.create_task(http.post(created["video_upload_url"], content=slow_body(), headers=headers))
            for created in sessions
        ]

        async def all_streaming() -> bool:
            states = [await _status(http, created["session_id"], committed_key) for created in sessions]
            return all(state["video"]["uploading"] for state in states)

        # Every body is mid-stream at once, and status requests still get the one connection.
        await _until(all_streaming)
        release.set()
        answers = await asyncio.gather(*uploads)
        assert [answer.status_code for answer in answers] == [200, 200, 200], [a.text for a in answers]
        for created in sessions:
            state = await _status(http, created["session_id"], committed_key)
            assert state["video"] == {"received": len(VIDEO), "size": len(VIDEO), "complete": True, "uploading": False}


async def test_the_recorded_offset_grows_while_a_body_streams(
    serve_app: AppServer, settings: Settings, committed_key: dict[str, str], api: Any
) -> None:
    base = await serve_app(create_app(settings.model_copy(update={"upload_lease_seconds": 1.0})))
    release = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        position = 0
        while not release.is_set() and position < 100_000:
            yield VIDEO[position : position + 1000]
            position += 1000
            await asyncio.sleep(0.02)
        await release.wait()
        yield VIDEO[position:]

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = await _create(http, committed_key, api)
        sid = created["session_id"]
        upload = asyncio.create_task(
            http.post(created["video_upload_url"], content=trickle(), headers={**committed_key, **OCTETS})
        )

        async def partly_recorded() -> bool:
            video = (await _status(http, sid, committed_key))["video"]
            return bool(video["uploading"] and 0 < video["received"] < len(VIDEO))

        await _until(partly_recorded)
        release.set()
        assert (await upload).status_code == 200
        done = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert done.status_code == 200, done.text
        assert done.json()["video_sha256"] == hashlib.sha256(VIDEO).hexdigest()


async def _lease_held_elsewhere(engine: AsyncEngine, sid: str, received: int, lease_seconds: float) -> None:
    """The state a replica leaves when it dies mid-body: its lease, and the offset its last renewal recorded."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE recording_storage.upload_files SET writer_token = :token, received = :received, "
                "lease_until = now() + make_interval(secs => :seconds) WHERE session_id = :sid AND kind = 'video'"
            ),
            {"token": uuid.uuid4(), "received": received, "seconds": lease_seconds, "sid": sid},
        )


async def test_a_lapsed_lease_is_taken_over_at_the_recorded_offset(
    serve_app: AppServer,
    settings: Settings,
    committed_key: dict[str, str],
    api: Any,
    db_engine: AsyncEngine,
    storage_dir: Path,
) -> None:
    base = await serve_app(create_app(settings))
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = await _create(http, committed_key, api)
        sid, url = created["session_id"], created["video_upload_url"]
        # The dead writer's file: the recorded 120 000 bytes, then bytes it wrote but never recorded (they may not
        # have reached the disk, so they are not trusted: here they are garbage).
        part = storage_dir / "uploads" / sid / "video"
        part.parent.mkdir(parents=True)
        part.write_bytes(VIDEO[:120_000] + b"\0" * 50_000)

        await _lease_held_elsewhere(db_engine, sid, 120_000, 600)
        busy = await http.post(
            url, content=VIDEO[120_000:], headers={**committed_key, **OCTETS, "Upload-Offset": "120000"}
        )
        assert busy.status_code == 409
        error = busy.json()["error"]
        assert error["code"] == "upload_in_progress"
        assert error["details"] == {"kind": "video", "offset": 120_000}
        assert busy.headers["Upload-Offset"] == "120000"
        assert 1 <= int(busy.headers["Retry-After"]) <= 600
        assert (await _status(http, sid, committed_key))["video"]["uploading"] is True
        refused = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "upload_in_progress"

        await _lease_held_elsewhere(db_engine, sid, 120_000, -1)
        assert (await _status(http, sid, committed_key))["video"] == {
            "received": 120_000,
            "size": len(VIDEO),
            "complete": False,
            "uploading": False,
        }
        taken = await http.post(
            url, content=VIDEO[120_000:], headers={**committed_key, **OCTETS, "Upload-Offset": "120000"}
        )
        assert taken.status_code == 200, taken.text
        assert taken.json()["complete"] is True
        assert part.stat().st_size == len(VIDEO)
        metadata = await http.post(created["metadata_upload_url"], content=b"{}", headers={**committed_key, **OCTETS})
        assert metadata.status_code == 200
        done = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert done.status_code == 200, done.text
        assert done.json()["video_sha256"] == hashlib.sha256(VIDEO).hexdigest()
