"""Finding, reading (with Range) and deleting recordings; who may call each route is test_authorization's."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on the local disk and on S3 (moto)."""
    return str(request.param)


VIDEO = os.urandom(10_000)


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], viewer: dict[str, str]
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    info = {"wats_user": user, "wats_user_machine": "PC-1", "ip": "10.0.0.9", "name": "srv-a", "connection_type": "RDP"}
    first = await api.upload_recording(uploader, VIDEO, connection_info=info)
    second = await api.upload_recording(
        uploader,
        VIDEO,
        connection_info={**info, "wats_user_machine": "PC-2", "name": "srv-b", "ip": "10.0.0.10"},
        metadata={"start_time": "2025-01-01T10:00:00Z"},
    )

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/v1/recordings", params={"wats_user": user, **params}, headers=viewer)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["results"]]

    assert set(await ids()) == {first["id"], second["id"]}
    assert await ids(machine="PC-2") == [second["id"]]
    assert await ids(server="srv-a") == [first["id"]]
    assert await ids(server="10.0.0.10") == [second["id"]]
    assert await ids(start="2025-01-01T00:00:00Z") == [second["id"]]
    assert await ids(end="2025-01-01T00:00:00Z") == [first["id"]]
    assert await ids(connection_type="SSH") == []
    page = (await client.get("/api/v1/recordings", params={"wats_user": user, "page_size": 1}, headers=viewer)).json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]
    assert (await client.get("/api/v1/recordings", params={"start": "yesterday"}, headers=viewer)).status_code == 422


async def test_content_ranges(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], viewer: dict[str, str]
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    url = f"/api/v1/recordings/{recording['id']}/content"

    async def get(**headers: str) -> httpx.Response:
        return await client.get(url, headers={**viewer, **headers})

    part = await get(Range="bytes=100-199")
    assert part.status_code == 206
    assert part.content == VIDEO[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(VIDEO)}"
    assert part.headers["accept-ranges"] == "bytes"
    assert "inline" in part.headers["content-disposition"]
    tail = await get(Range="bytes=-10")
    assert tail.content == VIDEO[-10:]
    open_ended = await get(Range="bytes=9990-")
    assert open_ended.content == VIDEO[9990:]
    assert (await get(Range=f"bytes={len(VIDEO)}-")).status_code == 416
    assert (await get(Range=f"bytes={len(VIDEO)}-")).headers["content-range"] == f"bytes */{len(VIDEO)}"
    assert (await get(Range="bytes=0-1,5-6")).status_code == 200
    assert (await get(Range="lines=1-2")).status_code == 200
    etag = part.headers["etag"]
    assert (await get(**{"If-None-Match": etag})).status_code == 304
    assert (await get(Range="bytes=0-9", **{"If-Range": '"other"'})).status_code == 200
    assert (await get(Range="bytes=0-9", **{"If-Range": etag})).status_code == 206
    download = await client.get(f"{url}?download=true", headers=viewer)
    assert download.headers["content-disposition"].startswith("attachment")


async def test_delete_by_admins_only(
    client: httpx.AsyncClient,
    api: Any,
    uploader: dict[str, str],
    viewer: dict[str, str],
    admin: dict[str, str],
    db_session: AsyncSession,
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    url = f"/api/v1/recordings/{recording['id']}"
    assert (await client.delete(url, headers=viewer)).status_code == 403
    assert (await client.delete(url, headers=uploader)).status_code == 403
    assert (await client.delete(url, headers=admin)).status_code == 204
    assert (await client.get(url, headers=viewer)).status_code == 404
    assert (await client.delete(url, headers=admin)).status_code == 404
    types = (
        await db_session.execute(
            text("SELECT type FROM recording_storage.outbox WHERE subject = :s ORDER BY created_at"),
            {"s": f"recording/{recording['id']}"},
        )
    ).scalars()
    assert list(types) == ["recording.upload.completed", "recording.deleted"]


async def test_tenants_see_only_their_recordings(
    client: httpx.AsyncClient, api: Any, make_key: Any, auth_headers: HeadersFactory
) -> None:
    acme_uploader = await make_key(["recordings:upload"], tenant="acme")
    recording = await api.upload_recording(acme_uploader, VIDEO)
    url = f"/api/v1/recordings/{recording['id']}"
    assert (await client.get(url, headers=await auth_headers("viewer", tenant="acme"))).status_code == 200
    assert (await client.get(url, headers=await auth_headers("viewer", tenant="beta"))).status_code == 404
    assert (await client.get(url, headers=await auth_headers("viewer"))).status_code == 200
    beta_admin = await auth_headers("admin", tenant="beta")
    assert (await client.delete(url, headers=beta_admin)).status_code == 404
