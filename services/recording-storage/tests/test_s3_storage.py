"""The S3 backend with files of several parts: resuming on another replica, a damaged part, expiry, deletion."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.testing.plugin import ClientFactory
from recording_storage.config import MIB, Settings
from recording_storage.housekeeping.sweeper import sweep
from recording_storage.main import create_app
from recording_storage.storage.select import build_storage

PART = 5 * MIB
S3_BUCKET = "recordings-test"
VIDEO = os.urandom(2 * PART + 300_000)


@pytest.fixture
def backend() -> str:
    return "s3"


@pytest.fixture
def s3(moto_endpoint: str) -> Iterator[Any]:
    yield boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


def staged(s3: Any) -> set[str]:
    """The staging objects (tails of uploads not finished yet) in the bucket."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix="staging/")
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


async def _state(db_engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with db_engine.connect() as connection:
        return list((await connection.execute(text(sql), params)).all())


async def test_parts_and_ranges(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], viewer: dict[str, str], s3: Any
) -> None:
    # Uploads of other tests on this S3 server may have left theirs: only this upload's must be gone.
    staged_before = staged(s3)
    recording = await api.upload_recording(uploader, VIDEO)
    start, end = PART - 10, PART + 10
    answer = await client.get(
        f"/api/v1/recordings/{recording['id']}/content", headers={**viewer, "Range": f"bytes={start}-{end}"}
    )
    assert answer.status_code == 206
    assert answer.content == VIDEO[start : end + 1]
    whole = await client.get(f"/api/v1/recordings/{recording['id']}/content", headers=viewer)
    assert hashlib.sha256(whole.content).hexdigest() == hashlib.sha256(VIDEO).hexdigest()
    assert staged(s3) <= staged_before


async def test_a_second_replica_continues_from_the_parts_in_postgres(
    make_client: ClientFactory,
    settings: Settings,
    api: Any,
    uploader: dict[str, str],
    viewer: dict[str, str],
    db_engine: AsyncEngine,
) -> None:
    created = await api.create_session(uploader, VIDEO)
    sid, url = created["session_id"], created["video_upload_url"]
    cut = PART + 1_000_000
    assert (await api.send(url, uploader, VIDEO[:cut])).status_code == 200
    parts = await _state(
        db_engine,
        "SELECT number, size, sha256 FROM recording_storage.s3_upload_parts WHERE key = :k ORDER BY number",
        k=f"uploads/{sid}/video",
    )
    assert [(row.number, row.size) for row in parts] == [(1, PART)]
    assert parts[0].sha256 == hashlib.sha256(VIDEO[:PART]).hexdigest()

    other = type(api)(await make_client(create_app(settings)))
    status = (await other.client.get(f"/api/v1/uploads/{sid}/status", headers=uploader)).json()
    assert status["video"]["received"] == cut
    assert (await other.send(url, uploader, VIDEO[cut:], offset=cut)).status_code == 200
    assert (await other.send(created["metadata_upload_url"], uploader, b'{"a": 1}')).status_code == 200
    done = await other.finalize(sid, uploader)
    assert done.status_code == 200, done.text
    content = await other.client.get(f"/api/v1/recordings/{done.json()['id']}/content", headers=viewer)
    assert content.content == VIDEO


async def test_a_damaged_part_is_found_and_the_upload_continues_before_it(
    client: httpx.AsyncClient,
    api: Any,
    uploader: dict[str, str],
    viewer: dict[str, str],
    db_engine: AsyncEngine,
    s3: Any,
) -> None:
    created = await api.create_session(uploader, VIDEO)
    sid, url = created["session_id"], created["video_upload_url"]
    assert (await api.send(url, uploader, VIDEO)).status_code == 200
    (row,) = await _state(
        db_engine,
        "SELECT object_key, upload_id FROM recording_storage.s3_uploads WHERE key = :k",
        k=f"uploads/{sid}/video",
    )
    damaged = bytearray(VIDEO[PART : 2 * PART])
    damaged[4242] ^= 0x01
    s3.upload_part(Bucket=S3_BUCKET, Key=row.object_key, UploadId=row.upload_id, PartNumber=2, Body=bytes(damaged))

    refused = await api.finalize(sid, uploader)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {"kind": "video", "offset": PART}
    assert (await api.send(url, uploader, VIDEO[PART:], offset=PART)).status_code == 200
    done = await api.finalize(sid, uploader)
    assert done.status_code == 200, done.text
    content = await client.get(f"/api/v1/recordings/{done.json()['id']}/content", headers=viewer)
    assert content.content == VIDEO


async def test_expiry_aborts_the_multipart_upload(
    client: httpx.AsyncClient,
    api: Any,
    uploader: dict[str, str],
    db_session: AsyncSession,
    db_engine: AsyncEngine,
    settings: Settings,
    shared_sessionmaker: Any,
    s3: Any,
) -> None:
    created = await api.create_session(uploader, VIDEO)
    sid = created["session_id"]
    assert (await api.send(created["video_upload_url"], uploader, VIDEO[: PART + 10])).status_code == 200
    (row,) = await _state(
        db_engine,
        "SELECT upload_id, tail_key FROM recording_storage.s3_uploads WHERE key = :k",
        k=f"uploads/{sid}/video",
    )
    await db_session.execute(
        text("UPDATE recording_storage.upload_sessions SET expires_at = :at WHERE id = :id"),
        {"at": datetime.now(UTC) - timedelta(seconds=1), "id": sid},
    )
    await db_session.flush()
    storage = build_storage(settings, async_sessionmaker(db_engine))
    try:
        report = await sweep(shared_sessionmaker, storage, settings)
    finally:
        await storage.aclose()  # type: ignore[attr-defined]
    assert report.expired_sessions >= 1
    uploads = s3.list_multipart_uploads(Bucket=S3_BUCKET).get("Uploads", [])
    assert row.upload_id not in {upload["UploadId"] for upload in uploads}
    assert "Contents" not in s3.list_objects_v2(Bucket=S3_BUCKET, Prefix=row.tail_key)
    assert (
        await _state(db_engine, "SELECT 1 FROM recording_storage.s3_uploads WHERE key = :k", k=f"uploads/{sid}/video")
        == []
    )


async def test_delete_removes_the_object_with_its_last_name(
    client: httpx.AsyncClient,
    api: Any,
    uploader: dict[str, str],
    admin: dict[str, str],
    db_engine: AsyncEngine,
    s3: Any,
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    keys = await _state(
        db_engine,
        "SELECT key, object_key FROM recording_storage.s3_objects WHERE key LIKE :k",
        k=f"%{recording['id'].replace('-', '')}%",
    )
    assert len(keys) == 2
    assert (await client.delete(f"/api/v1/recordings/{recording['id']}", headers=admin)).status_code == 204
    for row in keys:
        assert "Contents" not in s3.list_objects_v2(Bucket=S3_BUCKET, Prefix=row.object_key)
