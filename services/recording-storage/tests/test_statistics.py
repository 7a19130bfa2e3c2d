"""Upload statistics: volume per day, failed sessions and sessions in progress, for operators, per tenant."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.roles import Role
from mirante.testing.plugin import HeadersFactory
from recording_storage.models import UploadSession

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
            status="expired",
            video_size=500,
            details={},
            expires_at=now - timedelta(minutes=5),
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
    }
    assert all(day["recordings"] == 0 for day in body["days"][:-1])
    assert body["totals"] == {"recordings": 2, "bytes": 2 * (len(VIDEO) + len(METADATA)), "failed_sessions": 1}
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
