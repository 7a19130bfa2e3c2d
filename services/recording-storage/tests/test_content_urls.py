"""Signed content URLs: issued to readers, they open one recording's file without credentials until they expire;
an altered id, file, expiry or signature is refused."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from mirante.testing.plugin import ClientFactory
from recording_storage.config import Settings
from recording_storage.main import create_app
from recording_storage.recordings.errors import ContentUrlExpiredError, ContentUrlInvalidError
from recording_storage.recordings.signing import ContentUrlSigner

VIDEO = os.urandom(5_000)


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def issue(client: httpx.AsyncClient, recording_id: str, headers: dict[str, str], **params: str) -> Any:
    response = await client.post(f"/api/v1/recordings/{recording_id}/content-url", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def test_a_signed_url_streams_ranges_without_credentials(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], viewer: dict[str, str]
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    issued = await issue(client, recording["id"], viewer)
    assert 0 < issued["expires_in"] <= 900
    path = urlsplit(issued["url"]).path
    assert path == f"/api/v1/recordings/{recording['id']}/content"
    query = query_of(issued["url"])
    assert query["file"] == "video" and int(query["expires"]) > datetime.now(UTC).timestamp()

    whole = await client.get(issued["url"])
    assert whole.status_code == 200 and whole.content == VIDEO
    part = await client.get(issued["url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == VIDEO[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(VIDEO)}"

    metadata = await issue(client, recording["id"], viewer, file="metadata")
    assert (await client.get(metadata["url"])).content == b'{"k": 1}'


async def test_altered_urls_are_refused(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], viewer: dict[str, str]
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    other = await api.upload_recording(uploader, VIDEO)
    query = query_of((await issue(client, recording["id"], viewer))["url"])
    path = f"/api/v1/recordings/{recording['id']}/content"

    async def status(target: str, **changes: str) -> tuple[int, str]:
        response = await client.get(target, params={**query, **changes})
        return response.status_code, response.json()["error"]["code"]

    flipped = query["signature"][:-1] + ("A" if query["signature"][-1] != "A" else "B")
    assert await status(path, signature=flipped) == (403, "content_url_invalid")
    assert await status(path, expires=str(int(query["expires"]) + 3600)) == (403, "content_url_invalid")
    assert await status(path, file="metadata") == (403, "content_url_invalid")
    # Another recording's path with this recording's signature.
    assert await status(f"/api/v1/recordings/{other['id']}/content") == (403, "content_url_invalid")
    assert (await client.get(path, params={"expires": query["expires"]})).status_code == 403
    assert (await client.get(path, params={"signature": "short"})).status_code == 422
    # Without a signature the route wants credentials as before.
    assert (await client.get(path)).status_code == 401


async def test_an_expired_url_is_refused(
    make_client: ClientFactory, api: Any, uploader: dict[str, str], viewer: dict[str, str], settings: Settings
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    # A second app on the same database and storage, as another replica with the shared secret.
    secret = "shared-by-the-replicas-" + "x" * 16
    client = await make_client(create_app(settings.model_copy(update={"content_url_secret": SecretStr(secret)})))
    signer = ContentUrlSigner.from_secret(secret, settings.content_url_ttl_seconds)
    issued = query_of((await issue(client, recording["id"], viewer))["url"])
    signer.check(uuid.UUID(recording["id"]), "video", int(issued["expires"]), issued["signature"])
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    expires, signature = signer.issue(uuid.UUID(recording["id"]), "video", an_hour_ago)
    response = await client.get(
        f"/api/v1/recordings/{recording['id']}/content",
        params={"file": "video", "expires": expires, "signature": signature},
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "content_url_expired"


async def test_issuing_needs_a_reader_of_the_recording(
    client: httpx.AsyncClient, api: Any, uploader: dict[str, str], make_key: Any
) -> None:
    recording = await api.upload_recording(uploader, VIDEO)
    url = f"/api/v1/recordings/{recording['id']}/content-url"
    assert (await client.post(url)).status_code == 401
    assert (await client.post(url, headers=await make_key(["recordings:upload"]))).status_code == 403
    outsider = await make_key(["recordings:read"], tenant=f"t-{uuid.uuid4().hex[:8]}")
    assert (await client.post(url, headers=outsider)).status_code == 404
    missing = f"/api/v1/recordings/{uuid.uuid4()}/content-url"
    assert (await client.post(missing, headers=await make_key(["recordings:read"]))).status_code == 404


def test_the_signer_checks_in_constant_time_and_by_key() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    signer = ContentUrlSigner.from_secret("s" * 32, ttl_seconds=60)
    recording_id = uuid.uuid4()
    expires, signature = signer.issue(recording_id, "video", now)
    assert expires == int(now.timestamp()) + 60
    signer.check(recording_id, "video", expires, signature, now + timedelta(seconds=59))
    with pytest.raises(ContentUrlExpiredError):
        signer.check(recording_id, "video", expires, signature, now + timedelta(seconds=60))
    with pytest.raises(ContentUrlInvalidError):
        ContentUrlSigner.from_secret("t" * 32, ttl_seconds=60).check(recording_id, "video", expires, signature, now)
    # Replicas sharing a secret accept each other's URLs; processes without one do not.
    ContentUrlSigner.from_secret("s" * 32, ttl_seconds=60).check(recording_id, "video", expires, signature, now)
    with pytest.raises(ContentUrlInvalidError):
        ContentUrlSigner.from_secret(None, ttl_seconds=60).check(recording_id, "video", expires, signature, now)
    with pytest.raises(ContentUrlInvalidError):
        signer.check(recording_id, "video", expires, "é" * 43, now)
