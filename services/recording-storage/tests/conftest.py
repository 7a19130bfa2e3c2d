"""Fixtures of the recording-storage tests: settings on this run's servers with storage in a temporary folder,
an app and a client on it, callers, and helpers that create sessions and upload files.

Requests made through `client` share the test's `db_session` (rolled back at the end); `live` tests run the app
under uvicorn with its own connections, so what they need is committed and named uniquely.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.commands import create_api_key
from mirante.auth.roles import Role
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from recording_storage.config import MIB, Settings
from recording_storage.main import create_app

# Credentials moto accepts; real ones come from the environment of a deployment, never from the repository.
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
S3_BUCKET = "recordings-test"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port) with the test bucket, for the tests' whole run."""
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in MOTO_CREDENTIALS}
    os.environ.update(MOTO_CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=S3_BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def backend() -> str:
    """The storage backend of a test; modules that run on both parametrize it."""
    return "local"


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def settings(
    infra_settings: InfraSettings, storage_dir: Path, backend: str, request: pytest.FixtureRequest
) -> Settings:
    s3: dict[str, Any] = {}
    if backend == "s3":
        s3 = {
            "backend": "s3",
            "s3_bucket": S3_BUCKET,
            "s3_endpoint_url": request.getfixturevalue("moto_endpoint"),
            "s3_region": "us-east-1",
            "s3_part_size_bytes": 5 * MIB,
        }
    return Settings(
        infra=infra_settings,
        storage_dir=storage_dir,
        sweep_enabled=False,
        max_video_bytes=64 * 1024 * 1024,
        max_metadata_bytes=64 * 1024,
        write_buffer_bytes=64 * 1024,
        **s3,
    )


@pytest_asyncio.fixture
async def client(make_client: ClientFactory, settings: Settings) -> httpx.AsyncClient:
    return await make_client(create_app(settings))


async def key_headers(
    session: AsyncSession, scopes: list[str], *, role: Role = Role.viewer, tenant: str | None = None
) -> dict[str, str]:
    _, plaintext = await create_api_key(session, f"rec-{uuid.uuid4().hex[:10]}", scopes, role=role, tenant=tenant)
    return {"X-API-Key": plaintext}


@pytest.fixture
def make_key(db_session: AsyncSession) -> Any:
    """`await make_key(["recordings:read"], role=Role.admin)`: headers of a new API key in the test's session."""

    async def make(scopes: list[str], *, role: Role = Role.viewer, tenant: str | None = None) -> dict[str, str]:
        return await key_headers(db_session, scopes, role=role, tenant=tenant)

    return make


@pytest_asyncio.fixture
async def uploader(db_session: AsyncSession) -> dict[str, str]:
    """An API key with the upload scope, as a recorder holds."""
    return await key_headers(db_session, ["recordings:upload"])


@pytest_asyncio.fixture
async def viewer(auth_headers: HeadersFactory) -> dict[str, str]:
    return await auth_headers("viewer")


@pytest_asyncio.fixture
async def admin(auth_headers: HeadersFactory) -> dict[str, str]:
    return await auth_headers("admin")


def session_body(video: bytes, **overrides: Any) -> dict[str, Any]:
    """The recorder's create-session body for `video`, with its SHA-256."""
    body: dict[str, Any] = {
        "session_id": f"rdp_123_{uuid.uuid4().hex[:8]}",
        "connection_info": {
            "con_codigo": 123,
            "ip": "192.168.1.100",
            "name": "Production Server",
            "user": "administrator",
            "connection_type": "RDP",
            "wats_user": "jefferson.silva",
            "wats_user_machine": "DESKTOP-ABC123",
            "wats_user_ip": "192.168.1.50",
        },
        "file_size": len(video),
        "sha256": hashlib.sha256(video).hexdigest(),
        "metadata": {
            "start_time": "2024-10-26T15:00:22.123456",
            "recorder_settings": {"fps": 10, "quality": 23, "resolution_scale": 1.0},
        },
    }
    body.update(overrides)
    return body


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} if root.exists() else set()


@dataclass
class Api:
    """The recorder's calls on one client."""

    client: httpx.AsyncClient

    session_body = staticmethod(session_body)
    files_under = staticmethod(files_under)

    async def create_session(self, headers: dict[str, str], video: bytes, **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/uploads/create-session", json=session_body(video, **overrides), headers=headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def send(self, url: str, headers: dict[str, str], data: bytes, offset: int | None = 0) -> httpx.Response:
        extra = {"Content-Type": "application/octet-stream"}
        if offset is not None:
            extra["Upload-Offset"] = str(offset)
        return await self.client.post(url, content=data, headers={**headers, **extra})

    async def finalize(self, session_id: str, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(f"/api/v1/uploads/{session_id}/finalize", headers=headers)

    async def upload_recording(
        self, headers: dict[str, str], video: bytes, metadata_file: bytes = b'{"k": 1}', **overrides: Any
    ) -> dict[str, Any]:
        """A whole upload: session, video, metadata, finalize; answers the recording."""
        created = await self.create_session(headers, video, **overrides)
        assert (await self.send(created["video_upload_url"], headers, video)).status_code == 200
        assert (await self.send(created["metadata_upload_url"], headers, metadata_file)).status_code == 200
        response = await self.finalize(created["session_id"], headers)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
def shared_sessionmaker(db_session: AsyncSession) -> Any:
    """A sessionmaker handing out the test's own session, each transaction a savepoint (for a sweep), so what it
    commits stays inside the test's transaction."""

    class _Session:
        def __getattr__(self, name: str) -> Any:
            return getattr(db_session, name)

        def begin(self) -> Any:
            return db_session.begin_nested()

        async def __aenter__(self) -> Any:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    return lambda: _Session()


@pytest_asyncio.fixture
async def committed_key(db_engine: AsyncEngine) -> AsyncIterator[dict[str, str]]:
    """An upload key committed on its own connection, for the live-server tests."""
    async with AsyncSession(db_engine) as session, session.begin():
        headers = await key_headers(session, ["recordings:upload"])
    yield headers
