"""Upload statistics: volume per day, failed uploads and sessions in progress, for operators, per tenant."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.roles import Role
from mirante.testing.plugin import HeadersFactory
from recording_storage.config import Settings
from recording_storage.housekeeping.sweeper import sweep
from recording_storage.models import UploadSession
from recording_storage.storage.local import LocalStorage

VIDEO = os.urandom(3_000)
METADATA = b'{"k": 1}'


async def test_volume_failures_and_uploads_in_progress(
    client: httpx.AsyncClient, api: Any, make_key: Any, db_session: AsyncSession
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    uploader = await make_key(["recordings:upload"], tenant=tenant)
    operator = await make_key(["recordings:read"], role=Role.operator, tenant=tenant)
    for _ in range(2):
        await api.upload_recording(uploader, VIDEO, METADATA)
    pending = await api.create_session(uploader, VIDEO)
    assert (await api.send(pending["video_upload_url"], uploader, VIDEO[:1000])).status_code == 200
    now = datetime.now(UTC)
    db_session.add(
        UploadSession(
            id=f"ups_{uuid.uuid4().hex}",
            client_session_id="rdp_abandoned",
            owner_kind="api_key",
            owner_id=1,
            tenant=tenant,
            status="open",
            video_size=500,
            details={},
            # Expired today even just after midnight: an expiry counts on its own UTC day.
            expires_at=max(now - timedelta(minutes=5), datetime.combine(now.date(), time.min, UTC)),
        )
    )
    await db_session.flush()

    response = await client.get("/api/v1/uploads/statistics", params={"days": 7}, headers=operator)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert [day["day"] for day in body["days"]] == [
        (now.date() - timedelta(days=offset)).isoformat() for offset in range(6, -1, -1)
    ]
    today = body["days"][-1]
    assert today == {
        "day": now.date().isoformat(),
        "recordings": 2,
        "bytes": 2 * (len(VIDEO) + len(METADATA)),
        "failed_sessions": 1,
        "failures_by_reason": {"expired": 1},
    }
    assert all(day["recordings"] == 0 for day in body["days"][:-1])
    assert body["totals"] == {
        "recordings": 2,
        "bytes": 2 * (len(VIDEO) + len(METADATA)),
        "failed_sessions": 1,
        "failures_by_reason": {"expired": 1},
    }
    assert body["in_progress"]["sessions"] == 1
    assert body["in_progress"]["received_bytes"] == 1000
    assert body["in_progress"]["declared_bytes"] == len(VIDEO)
    assert body["in_progress"]["oldest_created_at"] is not None


async def test_only_operators_see_statistics(
    client: httpx.AsyncClient, make_key: Any, auth_headers: HeadersFactory
) -> None:
    url = "/api/v1/uploads/statistics"
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=await auth_headers("viewer"))).status_code == 403
    assert (await client.get(url, headers=await auth_headers("operator"))).status_code == 200
    assert (await client.get(url, headers=await make_key(["recordings:read"]))).status_code == 403
    assert (await client.get(url, headers=await make_key(["recordings:upload"], role=Role.operator))).status_code == 403
    operator = await auth_headers("operator")
    assert (await client.get(url, params={"days": 0}, headers=operator)).status_code == 422
    assert (await client.get(url, params={"days": 367}, headers=operator)).status_code == 422
    assert len((await client.get(url, params={"days": 366}, headers=operator)).json()["days"]) == 366


STATISTICS = "/api/v1/uploads/statistics"


async def _statistics(client: httpx.AsyncClient, headers: dict[str, str], days: int = 7) -> dict[str, Any]:
    response = await client.get(STATISTICS, params={"days": days}, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _failures_on(body: dict[str, Any], day: date) -> dict[str, int]:
    (figures,) = [figures for figures in body["days"] if figures["day"] == day.isoformat()]
    assert figures["failed_sessions"] == sum(figures["failures_by_reason"].values())
    return dict(figures["failures_by_reason"])


async def _tenant_keys(make_key: Any) -> tuple[dict[str, str], dict[str, str]]:
    """An uploader's and an operator's keys of a new tenant: what the test counts is this tenant's alone."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    uploader = await make_key(["recordings:upload"], tenant=tenant)
    return uploader, await make_key(["recordings:read"], role=Role.operator, tenant=tenant)


async def _refused_for_its_checksum(api: Any, uploader: dict[str, str]) -> httpx.Response:
    created = await api.create_session(uploader, VIDEO, sha256="0" * 64)
    assert (await api.send(created["video_upload_url"], uploader, VIDEO)).status_code == 200
    return await api.finalize(created["session_id"], uploader)


async def _abandon(db_session: AsyncSession, session_id: str, expired_at: datetime) -> None:
    await db_session.execute(update(UploadSession).where(UploadSession.id == session_id).values(expires_at=expired_at))


async def _held(db_session: AsyncSession, session_id: str) -> int:
    return int(await db_session.scalar(select(func.count()).where(UploadSession.id == session_id)) or 0)


async def test_an_expired_session_counts_on_its_expiry_day_after_its_row_is_removed(
    client: httpx.AsyncClient,
    api: Any,
    make_key: Any,
    db_session: AsyncSession,
    shared_sessionmaker: Any,
    storage_dir: Path,
    settings: Settings,
) -> None:
    uploader, operator = await _tenant_keys(make_key)
    expiry_day = datetime.now(UTC).date() - timedelta(days=3)
    expired_at = datetime.combine(expiry_day, time(12), UTC)
    created = await api.create_session(uploader, VIDEO)
    assert (await api.send(created["video_upload_url"], uploader, VIDEO[:1000])).status_code == 200
    await _abandon(db_session, created["session_id"], expired_at)
    storage = LocalStorage(storage_dir)

    report = await sweep(shared_sessionmaker, storage, settings, now=expired_at + timedelta(minutes=1))
    assert report.expired_sessions >= 1
    assert await _held(db_session, created["session_id"]) == 1
    body = await _statistics(client, operator)
    assert _failures_on(body, expiry_day) == {"expired": 1}
    assert body["totals"]["failed_sessions"] == 1

    report = await sweep(shared_sessionmaker, storage, settings)
    assert report.purged_sessions >= 1
    assert await _held(db_session, created["session_id"]) == 0
    body = await _statistics(client, operator)
    assert _failures_on(body, expiry_day) == {"expired": 1}
    assert body["totals"] == {
        "recordings": 0,
        "bytes": 0,
        "failed_sessions": 1,
        "failures_by_reason": {"expired": 1},
    }
    assert datetime.fromisoformat(body["failures_known_since"]) <= datetime.combine(expiry_day, time(), UTC)


async def test_finishes_refused_for_the_files_count_under_their_reason(
    client: httpx.AsyncClient, api: Any, make_key: Any
) -> None:
    uploader, operator = await _tenant_keys(make_key)
    today = datetime.now(UTC).date()

    refused = await _refused_for_its_checksum(api, uploader)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "checksum_mismatch"
    assert _failures_on(await _statistics(client, operator), today) == {"checksum_mismatch": 1}

    not_json = await api.create_session(uploader, VIDEO)
    assert (await api.send(not_json["video_upload_url"], uploader, VIDEO)).status_code == 200
    assert (await api.send(not_json["metadata_upload_url"], uploader, b"{not json")).status_code == 200
    for _ in range(2):
        refused = await api.finalize(not_json["session_id"], uploader)
        assert refused.status_code == 422, refused.text
        assert (await api.send(not_json["metadata_upload_url"], uploader, b"[1]")).status_code == 200
    body = await _statistics(client, operator)
    assert _failures_on(body, today) == {"checksum_mismatch": 1, "metadata_invalid": 2}
    assert body["totals"]["failed_sessions"] == 3


async def test_a_tenant_bound_operator_sees_only_its_tenants_failures(
    client: httpx.AsyncClient, api: Any, make_key: Any, auth_headers: HeadersFactory
) -> None:
    ours, theirs = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(2))
    today = datetime.now(UTC).date()
    for tenant, refusals in ((ours, 1), (theirs, 2)):
        uploader = await make_key(["recordings:upload"], tenant=tenant)
        for _ in range(refusals):
            assert (await _refused_for_its_checksum(api, uploader)).status_code == 422

    ours_operator = await make_key(["recordings:read"], role=Role.operator, tenant=ours)
    assert _failures_on(await _statistics(client, ours_operator), today) == {"checksum_mismatch": 1}
    theirs_operator = await auth_headers("operator", tenant=theirs)
    assert _failures_on(await _statistics(client, theirs_operator), today) == {"checksum_mismatch": 2}
    # An operator bound to no tenant sees every tenant's (other tests may have counted some too).
    assert _failures_on(await _statistics(client, await auth_headers("operator")), today)["checksum_mismatch"] >= 3


async def test_failures_count_within_the_days_asked_for(
    client: httpx.AsyncClient,
    api: Any,
    make_key: Any,
    db_session: AsyncSession,
    shared_sessionmaker: Any,
    storage_dir: Path,
    settings: Settings,
) -> None:
    uploader, operator = await _tenant_keys(make_key)
    week_ago = datetime.now(UTC).date() - timedelta(days=7)
    created = await api.create_session(uploader, VIDEO)
    await _abandon(db_session, created["session_id"], datetime.combine(week_ago, time(23, 59), UTC))
    await sweep(shared_sessionmaker, LocalStorage(storage_dir), settings)
    assert await _held(db_session, created["session_id"]) == 0

    seven = await _statistics(client, operator, days=7)
    assert seven["days"][0]["day"] == (week_ago + timedelta(days=1)).isoformat()
    assert seven["totals"]["failed_sessions"] == 0
    eight = await _statistics(client, operator, days=8)
    assert eight["days"][0] == {
        "day": week_ago.isoformat(),
        "recordings": 0,
        "bytes": 0,
        "failed_sessions": 1,
        "failures_by_reason": {"expired": 1},
    }
    assert eight["totals"]["failed_sessions"] == 1
