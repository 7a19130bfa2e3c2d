"""The recorder's contract end to end through the app: sessions, streamed uploads, resumption, finalize."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on the local disk and on S3 (moto)."""
    return str(request.param)


VIDEO = os.urandom(300_000)


async def test_health_under_the_api_prefix(client: httpx.AsyncClient, api: Any) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["service"] == "recording-storage"


async def test_create_session_answers_the_contract_fields(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str]
) -> None:
    created = await api.create_session(uploader, VIDEO)
    assert created["session_id"].startswith("ups_")
    assert created["video_upload_url"] == f"http://testserver/api/v1/uploads/{created['session_id']}/file?kind=video"
    assert created["metadata_upload_url"].endswith("/file?kind=metadata")
    assert created["expires_at"].endswith("Z") or "+00:00" in created["expires_at"]


async def test_create_session_validates_the_body(client: httpx.AsyncClient, api: Any, uploader: dict[str, str]) -> None:
    bad = [
        api.session_body(VIDEO, file_size=-1),
        api.session_body(VIDEO, sha256="xyz"),
        api.session_body(VIDEO, sha256=f" {hashlib.sha256(VIDEO).hexdigest()}"),
        api.session_body(VIDEO, metadata={"start_time": "yesterday"}),
        # asyncpg would store these as -infinity and infinity.
        api.session_body(VIDEO, metadata={"start_time": "0001-01-01T00:00:00"}),
        api.session_body(VIDEO, metadata={"start_time": "9999-12-31T23:59:59.999999"}),
        api.session_body(VIDEO, session_id="a\x00b"),
        api.session_body(VIDEO, session_id=" \u00a0 "),
        {"session_id": "x"},
    ]
    for body in bad:
        response = await client.post("/api/v1/uploads/create-session", json=body, headers=uploader)
        assert response.status_code == 422, body


async def test_a_whole_upload_becomes_a_recording(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], viewer: dict[str, str]
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    assert recording["video_size"] == len(VIDEO)
    assert recording["video_sha256"] == hashlib.sha256(VIDEO).hexdigest()
    assert recording["wats_user"] == "jefferson.silva"
    assert recording["start_time"].startswith("2024-10-26T15:00:22.123456")
    content = await client.get(f"/api/v1/recordings/{recording['id']}/content", headers=viewer)
    assert content.status_code == 200
    assert content.content == VIDEO
    assert content.headers["etag"] == f'"{recording["video_sha256"]}"'
    metadata = await client.get(f"/api/v1/recordings/{recording['id']}/content?file=metadata", headers=viewer)
    assert metadata.json() == {"k": 1}


async def test_finalize_twice_answers_the_same_recording(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str]
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    again = await client.post(f"/api/v1/uploads/{recording['session_id']}/finalize", headers=uploader)
    assert again.status_code == 200
    assert again.json()["id"] == recording["id"]


async def test_an_interrupted_upload_resumes_at_the_server_offset(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str]
) -> None:
    created = await api.create_session(uploader, VIDEO)
    sid, url = created["session_id"], created["video_upload_url"]
    first = await api.send(url, uploader, VIDEO[:100_000])
    assert first.status_code == 200
    assert first.headers["Upload-Offset"] == "100000"
    status = (await client.get(f"/api/v1/uploads/{sid}/status", headers=uploader)).json()
    assert status["video"] == {"received": 100_000, "size": len(VIDEO), "complete": False, "uploading": False}

    wrong = await api.send(url, uploader, VIDEO[50_000:], offset=50_000)
    assert wrong.status_code == 409
    assert wrong.headers["Upload-Offset"] == "100000"
    assert wrong.json()["error"]["details"]["offset"] == 100_000

    early = await client.post(f"/api/v1/uploads/{sid}/finalize", headers=uploader)
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "upload_incomplete"
    assert early.json()["error"]["details"]["video"] == {"received": 100_000, "size": len(VIDEO)}

    rest = await api.send(url, uploader, VIDEO[100_000:], offset=100_000)
    assert rest.status_code == 200
    assert rest.json()["complete"] is True
    done = await client.post(f"/api/v1/uploads/{sid}/finalize", headers=uploader)
    assert done.status_code == 200, done.text
    assert done.json()["video_sha256"] == hashlib.sha256(VIDEO).hexdigest()


async def test_a_flipped_byte_is_caught_at_finalize_and_the_video_starts_over(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], storage_dir: object
) -> None:
    created = await api.create_session(uploader, VIDEO)
    sid = created["session_id"]
    corrupt = bytearray(VIDEO)
    corrupt[12345] ^= 0x01
    assert (await api.send(created["video_upload_url"], uploader, bytes(corrupt))).status_code == 200
    refused = await client.post(f"/api/v1/uploads/{sid}/finalize", headers=uploader)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "checksum_mismatch"
    assert error["details"]["actual"] == hashlib.sha256(bytes(corrupt)).hexdigest()
    status = (await client.get(f"/api/v1/uploads/{sid}/status", headers=uploader)).json()
    assert status["video"]["received"] == 0
    listed = await client.get("/api/v1/recordings", headers=uploader | {})
    assert all(item["session_id"] != sid for item in listed.json().get("results", []))

    assert (await api.send(created["video_upload_url"], uploader, VIDEO)).status_code == 200
    assert (await client.post(f"/api/v1/uploads/{sid}/finalize", headers=uploader)).status_code == 200


async def test_no_upload_offset_starts_the_file_over(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str]
) -> None:
    created = await api.create_session(uploader, VIDEO)
    await api.send(created["video_upload_url"], uploader, b"garbage" * 10)
    again = await api.send(created["video_upload_url"], uploader, VIDEO, offset=None)
    assert again.status_code == 200
    assert again.json() == {
        "session_id": created["session_id"],
        "kind": "video",
        "received": len(VIDEO),
        "size": len(VIDEO),
        "complete": True,
    }


async def test_multipart_bodies_are_streamed_too(client: httpx.AsyncClient, api: Any, uploader: dict[str, str]) -> None:
    created = await api.create_session(uploader, VIDEO)
    response = await client.post(
        created["video_upload_url"],
        headers={**uploader, "Upload-Offset": "0"},
        data={"note": "ignored"},
        files={"file": ("session_123.mp4", VIDEO, "video/mp4")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["received"] == len(VIDEO)
    metadata = await client.post(
        created["metadata_upload_url"], headers=uploader, files={"file": ("meta.json", b'{"a": 2}', "application/json")}
    )
    assert metadata.json()["complete"] is True
    done = await client.post(f"/api/v1/uploads/{created['session_id']}/finalize", headers=uploader)
    assert done.status_code == 200, done.text


async def test_metadata_that_is_not_json_is_refused_and_dropped(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str]
) -> None:
    created = await api.create_session(uploader, VIDEO)
    await api.send(created["video_upload_url"], uploader, VIDEO)
    await api.send(created["metadata_upload_url"], uploader, b"not json")
    refused = await client.post(f"/api/v1/uploads/{created['session_id']}/finalize", headers=uploader)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "metadata_invalid"


async def test_finalize_emits_upload_completed(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], db_session: AsyncSession
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    types = (
        await db_session.execute(
            text("SELECT type FROM recording_storage.outbox WHERE subject = :subject"),
            {"subject": f"recording/{recording['id']}"},
        )
    ).scalars()
    assert list(types) == ["recording.upload.completed"]


async def test_the_partial_files_go_once_finished(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], storage_dir: object, backend: str
) -> None:
    if backend != "local":
        pytest.skip("the S3 equivalent is in test_s3_storage.py")
    recording = await api.upload_recording(uploader, VIDEO)
    names = api.files_under(storage_dir)  # type: ignore[arg-type]
    assert not any(name.startswith("uploads/") for name in names)
    assert {name.rsplit("/", 1)[1] for name in names} == {"video.mp4", "metadata.json"}
    assert all(recording["id"].replace("-", "") in name for name in names)


async def test_create_session_again_answers_the_open_session_of_that_recording(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str]
) -> None:
    body = api.session_body(VIDEO)
    first = await client.post("/api/v1/uploads/create-session", json=body, headers=uploader)
    again = await client.post("/api/v1/uploads/create-session", json=body, headers=uploader)
    assert first.status_code == again.status_code == 201
    assert again.json()["session_id"] == first.json()["session_id"]

    other_file = await client.post(
        "/api/v1/uploads/create-session", json={**body, "file_size": len(VIDEO) + 1, "sha256": None}, headers=uploader
    )
    assert other_file.status_code == 409
    assert other_file.json()["error"]["code"] == "session_id_in_use"
    assert other_file.json()["error"]["details"] == {"session_id": first.json()["session_id"]}


async def test_create_session_for_a_finished_recording_names_it(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], db_session: AsyncSession
) -> None:
    body = api.session_body(VIDEO)
    recording = await api.upload_recording(uploader, VIDEO, session_id=body["session_id"])
    again = await client.post("/api/v1/uploads/create-session", json=body, headers=uploader)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "session_finished"
    assert again.json()["error"]["details"] == {"recording_id": recording["id"]}

    # Once the sweeper removed the finished session's row, the recording itself still answers.
    await db_session.execute(
        text("DELETE FROM recording_storage.upload_sessions WHERE client_session_id = :c"), {"c": body["session_id"]}
    )
    after_purge = await client.post("/api/v1/uploads/create-session", json=body, headers=uploader)
    assert after_purge.status_code == 409, after_purge.text
    assert after_purge.json()["error"]["details"] == {"recording_id": recording["id"]}


async def test_create_session_after_the_open_one_ran_out_of_time_expires_it_and_opens_another(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], db_session: AsyncSession
) -> None:
    body = api.session_body(VIDEO)
    first = await api.create_session(uploader, VIDEO, session_id=body["session_id"])
    assert (await api.send(first["video_upload_url"], uploader, VIDEO[:500])).status_code == 200
    await db_session.execute(
        text("UPDATE recording_storage.upload_sessions SET expires_at = now() - interval '1 second' WHERE id = :id"),
        {"id": first["session_id"]},
    )

    again = await client.post("/api/v1/uploads/create-session", json=body, headers=uploader)

    assert again.status_code == 201, again.text
    assert again.json()["session_id"] != first["session_id"]
    rows = (
        await db_session.execute(
            text(
                "SELECT id, status FROM recording_storage.upload_sessions WHERE client_session_id = :c ORDER BY "
                "created_at"
            ),
            {"c": body["session_id"]},
        )
    ).all()
    assert [(row.id, row.status) for row in rows] == [
        (first["session_id"], "expired"),
        (again.json()["session_id"], "open"),
    ]
    expired = (
        await db_session.execute(
            text("SELECT envelope FROM recording_storage.outbox WHERE subject = :s"),
            {"s": f"upload-session/{first['session_id']}"},
        )
    ).scalar_one()
    assert expired["type"] == "recording.upload.expired"
    assert expired["data"]["received"] == {"video": 500, "metadata": 0}
    assert (await client.get(f"/api/v1/uploads/{first['session_id']}/status", headers=uploader)).status_code == 410
