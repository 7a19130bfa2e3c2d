"""Uploads against the app under uvicorn, with its own database connections: a client that vanishes mid-body,
and a finish racing an upload still streaming."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from mirante.testing.browser import AppServer
from recording_storage.config import Settings
from recording_storage.main import create_app

VIDEO = os.urandom(200_000)
WAIT_STEPS = 200


async def _status(http: httpx.AsyncClient, sid: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await http.get(f"/api/v1/uploads/{sid}/status", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_vanished_client_keeps_what_arrived_and_resumes(
    serve_app: AppServer, settings: Settings, committed_key: dict[str, str], api: Any
) -> None:
    base = await serve_app(create_app(settings))
    async with httpx.AsyncClient(base_url=base) as http:
        created = (
            await http.post("/api/v1/uploads/create-session", json=api.session_body(VIDEO), headers=committed_key)
        ).json()
        sid = created["session_id"]
        target = urlsplit(created["video_upload_url"])
        _, writer = await asyncio.open_connection(target.hostname, target.port)
        head = (
            f"POST {target.path}?{target.query} HTTP/1.1\r\nHost: {target.netloc}\r\n"
            f"X-API-Key: {committed_key['X-API-Key']}\r\nContent-Type: application/octet-stream\r\n"
            f"Upload-Offset: 0\r\nContent-Length: {len(VIDEO)}\r\n\r\n"
        )
        writer.write(head.encode() + VIDEO[:80_000])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        for _ in range(WAIT_STEPS):
            status = await _status(http, sid, committed_key)
            if status["video"]["received"]:
                break
            await asyncio.sleep(0.05)
        received = status["video"]["received"]
        assert 0 < received <= 80_000
        assert status["video"]["complete"] is False

        rest = await http.post(
            created["video_upload_url"],
            content=VIDEO[received:],
            headers={**committed_key, "Upload-Offset": str(received), "Content-Type": "application/octet-stream"},
        )
        assert rest.status_code == 200, rest.text
        done = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert done.status_code == 200, done.text
        assert done.json()["video_sha256"] == hashlib.sha256(VIDEO).hexdigest()


async def test_finalize_racing_an_upload_is_refused(
    serve_app: AppServer, settings: Settings, committed_key: dict[str, str], api: Any
) -> None:
    base = await serve_app(create_app(settings))
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield VIDEO[:1000]
        await release.wait()
        yield VIDEO[1000:]

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = (
            await http.post("/api/v1/uploads/create-session", json=api.session_body(VIDEO), headers=committed_key)
        ).json()
        sid = created["session_id"]
        headers = {**committed_key, "Upload-Offset": "0", "Content-Type": "application/octet-stream"}
        upload = asyncio.create_task(http.post(created["video_upload_url"], content=slow_body(), headers=headers))

        # Polling finalize instead could take the session's lock just as the upload claims its file, and refuse it.
        for _ in range(WAIT_STEPS):
            if (await _status(http, sid, committed_key))["video"]["uploading"]:
                break
            await asyncio.sleep(0.05)
        refused = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "upload_in_progress"
        second = await http.post(created["video_upload_url"], content=b"x", headers=headers)
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "upload_in_progress"

        release.set()
        finished = await upload
        assert finished.status_code == 200, finished.text
        done = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert done.status_code == 200, done.text
        assert done.json()["video_size"] == len(VIDEO)
