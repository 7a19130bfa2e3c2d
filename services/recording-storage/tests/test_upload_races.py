"""Races against the app under uvicorn, each request on its own database connection: create-session calls for one
recording at once, and a finish that hashes a file while uploads and other finishes come in.

The create-session race is made certain rather than likely: the test holds a SHARE lock on `upload_sessions`
(reads pass, inserts wait) until every call has looked for the recording's session, found none and is waiting to
insert its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.testing.browser import AppServer
from recording_storage.config import Settings
from recording_storage.main import create_app
from recording_storage.storage.base import Storage

CALLS = 6
WAIT_STEPS = 400
VIDEO = os.urandom(300_000)
OCTETS = {"Content-Type": "application/octet-stream"}


async def _until(check: Any) -> None:
    for _ in range(WAIT_STEPS):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def test_create_session_calls_racing_for_one_recording_open_one_session(
    serve_app: AppServer, settings: Settings, committed_key: dict[str, str], api: Any, db_engine: AsyncEngine
) -> None:
    base = await serve_app(create_app(settings))
    body = api.session_body(VIDEO)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http, db_engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE recording_storage.upload_sessions IN SHARE MODE"))
        calls = [
            asyncio.create_task(http.post("/api/v1/uploads/create-session", json=body, headers=committed_key))
            for _ in range(CALLS)
        ]

        async def all_waiting_to_insert() -> bool:
            async with db_engine.connect() as probe:
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation' "
                        "AND relation = 'recording_storage.upload_sessions'::regclass"
                    )
                )
            return bool(waiting == CALLS)

        await _until(all_waiting_to_insert)
        await blocker.rollback()
        answers = await asyncio.gather(*calls)

    assert [answer.status_code for answer in answers] == [201] * CALLS, [answer.text for answer in answers]
    assert len({answer.json()["session_id"] for answer in answers}) == 1
    async with db_engine.connect() as connection:
        stored = await connection.scalar(
            text("SELECT count(*) FROM recording_storage.upload_sessions WHERE client_session_id = :c"),
            {"c": body["session_id"]},
        )
    assert stored == 1


class HashGate:
    """The app's storage, except that reading a partial video (only finalize does) waits for `release`. Thread
    events: the app runs on the server's own thread and loop."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.reading = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        if key.startswith("uploads/") and key.endswith("/video"):
            self.reading.set()
            await asyncio.to_thread(self.release.wait, 60)
        async for chunk in self.inner.read_range(key, start, end):
            yield chunk


async def test_finalize_hashes_a_file_sent_in_pieces_with_no_connection_held_and_the_file_kept_still(
    serve_app: AppServer, settings: Settings, committed_key: dict[str, str], api: Any
) -> None:
    one = settings.infra.model_copy(
        update={"database": settings.infra.database.model_copy(update={"pool_size": 1, "max_overflow": 0})}
    )
    app = create_app(settings.model_copy(update={"infra": one, "upload_lease_seconds": 1.0}))
    base = await serve_app(app)
    gate = HashGate(app.state.storage)
    app.state.storage = gate
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = (
            await http.post("/api/v1/uploads/create-session", json=api.session_body(VIDEO), headers=committed_key)
        ).json()
        sid, url = created["session_id"], created["video_upload_url"]
        # In two pieces: no request saw the whole file, so finishing has to read it to hash it.
        for offset, piece in ((0, VIDEO[:100_000]), (100_000, VIDEO[100_000:])):
            sent = await http.post(
                url, content=piece, headers={**committed_key, **OCTETS, "Upload-Offset": str(offset)}
            )
            assert sent.status_code == 200, sent.text
        metadata = await http.post(created["metadata_upload_url"], content=b"{}", headers={**committed_key, **OCTETS})
        assert metadata.status_code == 200, metadata.text
        finishing = asyncio.create_task(http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key))
        assert await asyncio.to_thread(gate.reading.wait, 30)

        # Hashing holds the pool's only connection no more: other requests get it, and its lease outlives
        # several lease periods (it is renewed while the hash runs).
        await asyncio.sleep(2.5)
        status = await http.get(f"/api/v1/uploads/{sid}/status", headers=committed_key)
        assert status.status_code == 200, status.text
        assert status.json()["video"]["uploading"] is True
        restart = await http.post(url, content=b"x", headers={**committed_key, **OCTETS, "Upload-Offset": "0"})
        assert (restart.status_code, restart.json()["error"]["code"]) == (409, "upload_in_progress")
        again = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "upload_in_progress")
        assert not finishing.done()

        gate.release.set()
        done = await finishing
        assert done.status_code == 200, done.text
        assert done.json()["video_sha256"] == hashlib.sha256(VIDEO).hexdigest()
        assert done.json()["video_size"] == len(VIDEO)
        twice = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert (twice.status_code, twice.json()["id"]) == (200, done.json()["id"])


async def test_a_finish_whose_hash_fails_leaves_the_upload_as_it_was(
    serve_app: AppServer, settings: Settings, committed_key: dict[str, str], api: Any
) -> None:
    app = create_app(settings)
    base = await serve_app(app)
    inner: Storage = app.state.storage

    class Broken(HashGate):
        async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
            raise OSError("the disk went away")
            yield b""  # an async generator, as the interface's

    app.state.storage = Broken(inner)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = (
            await http.post("/api/v1/uploads/create-session", json=api.session_body(VIDEO), headers=committed_key)
        ).json()
        sid, url = created["session_id"], created["video_upload_url"]
        for offset, piece in ((0, VIDEO[:100_000]), (100_000, VIDEO[100_000:])):
            sent = await http.post(
                url, content=piece, headers={**committed_key, **OCTETS, "Upload-Offset": str(offset)}
            )
            assert sent.status_code == 200, sent.text
        failed = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert failed.status_code == 500
        status = (await http.get(f"/api/v1/uploads/{sid}/status", headers=committed_key)).json()
        assert status["video"] == {"received": len(VIDEO), "size": len(VIDEO), "complete": True, "uploading": False}

        app.state.storage = inner
        done = await http.post(f"/api/v1/uploads/{sid}/finalize", headers=committed_key)
        assert done.status_code == 200, done.text
        assert done.json()["video_sha256"] == hashlib.sha256(VIDEO).hexdigest()
