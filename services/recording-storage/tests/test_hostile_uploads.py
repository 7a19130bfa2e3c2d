"""Hostile input to the upload and recording endpoints: each is a clear 4xx, nothing is written outside the
storage root, and nothing becomes half-visible."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from recording_storage.config import Settings
from recording_storage.housekeeping.sweeper import sweep
from recording_storage.storage.local import LocalStorage

VIDEO = os.urandom(50_000)


def paths_under(root: Path) -> set[str]:
    """Files and folders: a refused request must not even make a folder."""
    return {str(path.relative_to(root)) for path in root.rglob("*")} if root.exists() else set()


def file_size(path: Path) -> int:
    return path.stat().st_size


@pytest.mark.parametrize(
    "session_id",
    ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "ups_../../x", "ups_" + "0" * 31 + "G", "%00", "a" * 300],
)
async def test_hostile_session_ids_are_refused(
    client: httpx.AsyncClient, uploader: dict[str, str], storage_dir: Path, session_id: str
) -> None:
    for method, suffix in (("POST", "file?kind=video"), ("GET", "status"), ("POST", "finalize")):
        response = await client.request(
            method, f"/api/v1/uploads/{session_id}/{suffix}", content=b"x" * 10, headers=uploader
        )
        assert 400 <= response.status_code < 500, (session_id, suffix, response.status_code)
    assert paths_under(storage_dir) == set()


async def test_file_names_never_come_from_the_client(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], storage_dir: Path
) -> None:
    created = await api.create_session(uploader, VIDEO, session_id="../../../../tmp/evil")
    response = await client.post(
        created["video_upload_url"],
        headers={**uploader, "Upload-Offset": "0"},
        files={"file": ("../../../../tmp/evil.mp4", VIDEO, "video/mp4")},
    )
    assert response.status_code == 200
    assert api.files_under(storage_dir) == {f"uploads/{created['session_id']}/video"}


async def test_an_unknown_kind_is_refused(client: httpx.AsyncClient, api: Any, uploader: dict[str, str]) -> None:
    created = await api.create_session(uploader, VIDEO)
    url = created["video_upload_url"].replace("kind=video", "kind=../passwd")
    assert (await api.send(url, uploader, b"x")).status_code == 422


async def test_an_oversize_declared_size_is_413(client: httpx.AsyncClient, api: Any, uploader: dict[str, str]) -> None:
    response = await client.post(
        "/api/v1/uploads/create-session", json=api.session_body(VIDEO, file_size=2**40), headers=uploader
    )
    assert response.status_code == 413
    assert response.json()["error"]["details"]["limit"] == 64 * 1024 * 1024


async def test_a_body_longer_than_declared_keeps_nothing(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], storage_dir: Path
) -> None:
    created = await api.create_session(uploader, VIDEO)
    url = created["video_upload_url"]
    assert (await api.send(url, uploader, VIDEO[:1000])).status_code == 200
    declared_too_long = await api.send(url, uploader, VIDEO[1000:] + b"extra", offset=1000)
    assert declared_too_long.status_code == 413

    async def chunked() -> Any:
        yield VIDEO[1000:]
        yield b"more than declared"

    streamed = await client.post(
        url,
        content=chunked(),
        headers={**uploader, "Upload-Offset": "1000", "Content-Type": "application/octet-stream"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "body_beyond_size"
    status = (await client.get(f"/api/v1/uploads/{created['session_id']}/status", headers=uploader)).json()
    assert status["video"]["received"] == 1000
    assert file_size(storage_dir / "uploads" / created["session_id"] / "video") == 1000


async def test_a_malformed_offset_is_400(client: httpx.AsyncClient, api: Any, uploader: dict[str, str]) -> None:
    created = await api.create_session(uploader, VIDEO)
    for value in ("-1", "abc", "1e3", "9" * 40, str(2**63), "847208710298309182357504"):
        response = await client.post(
            created["video_upload_url"], content=b"x", headers={**uploader, "Upload-Offset": value}
        )
        assert response.status_code == 400, value


async def test_another_callers_session_is_not_found(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], make_key: Any, auth_headers: HeadersFactory
) -> None:
    created = await api.create_session(uploader, VIDEO)
    sid = created["session_id"]
    for other in (await make_key(["recordings:upload"]), await auth_headers("admin")):
        assert (await client.get(f"/api/v1/uploads/{sid}/status", headers=other)).status_code == 404
        assert (await api.send(created["video_upload_url"], other, VIDEO)).status_code == 404
        assert (await api.finalize(sid, other)).status_code == 404


async def test_wrong_credentials_are_401(client: httpx.AsyncClient, api: Any) -> None:
    for headers in (
        {},
        {"X-API-Key": "mk_abcdefgh_" + "x" * 43},
        {"Authorization": "Bearer not-a-token"},
        {"X-API-Key": "nonsense"},
    ):
        response = await client.post("/api/v1/uploads/create-session", json=api.session_body(VIDEO), headers=headers)
        assert response.status_code == 401, headers


async def test_an_expired_session_is_410_and_swept(
    client: httpx.AsyncClient,
    api: Any,
    uploader: dict[str, str],
    db_session: AsyncSession,
    shared_sessionmaker: Any,
    settings: Settings,
    storage_dir: Path,
) -> None:
    created = await api.create_session(uploader, VIDEO)
    sid = created["session_id"]
    assert (await api.send(created["video_upload_url"], uploader, VIDEO[:500])).status_code == 200
    await db_session.execute(
        text("UPDATE recording_storage.upload_sessions SET expires_at = :at WHERE id = :id"),
        {"at": datetime.now(UTC) - timedelta(seconds=1), "id": sid},
    )
    assert (await client.get(f"/api/v1/uploads/{sid}/status", headers=uploader)).status_code == 410
    assert (await api.send(created["video_upload_url"], uploader, VIDEO[500:], offset=500)).status_code == 410
    assert (await api.finalize(sid, uploader)).status_code == 410

    report = await sweep(shared_sessionmaker, LocalStorage(storage_dir), settings)
    assert report.expired_sessions >= 1
    assert not any(name.startswith(f"uploads/{sid}") for name in paths_under(storage_dir))
    events = (
        await db_session.execute(
            text("SELECT type, envelope FROM recording_storage.outbox WHERE subject = :s"),
            {"s": f"upload-session/{sid}"},
        )
    ).all()
    assert [row.type for row in events] == ["recording.upload.expired"]
    assert events[0].envelope["data"]["received"] == {"video": 500, "metadata": 0}
    assert (await client.get(f"/api/v1/uploads/{sid}/status", headers=uploader)).status_code == 410


async def test_retention_deletes_old_recordings(
    client: httpx.AsyncClient,
    api: Any,
    uploader: dict[str, str],
    viewer: dict[str, str],
    db_session: AsyncSession,
    shared_sessionmaker: Any,
    settings: Settings,
    storage_dir: Path,
) -> None:
    old = await api.upload_recording(uploader, VIDEO)
    new = await api.upload_recording(uploader, VIDEO)
    await db_session.execute(
        text("UPDATE recording_storage.recordings SET created_at = now() - interval '40 days' WHERE id = :id"),
        {"id": old["id"]},
    )
    kept = settings.model_copy(update={"retention_days": 30})
    report = await sweep(shared_sessionmaker, LocalStorage(storage_dir), kept)
    assert report.deleted_recordings >= 1
    assert (await client.get(f"/api/v1/recordings/{old['id']}", headers=viewer)).status_code == 404
    assert (await client.get(f"/api/v1/recordings/{new['id']}", headers=viewer)).status_code == 200
    assert not any(old["id"].replace("-", "") in name for name in api.files_under(storage_dir))
    events = (
        await db_session.execute(
            text("SELECT type, envelope FROM recording_storage.outbox WHERE subject = :s ORDER BY created_at"),
            {"s": f"recording/{old['id']}"},
        )
    ).all()
    assert [row.type for row in events] == ["recording.upload.completed", "recording.deleted"]
    assert events[1].envelope["data"]["reason"] == "retention"
