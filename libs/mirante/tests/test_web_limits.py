"""Request body caps (413 before the body is read, per-prefix caps) and Redis rate limits (429 with Retry-After)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel
from redis.asyncio import Redis

from mirante.auth.passwords import password_work
from mirante.settings import CoreSettings, InfraSettings, RedisSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory
from mirante.web.ratelimit import limits_storage_uri, rate_limit

DEFAULT_CAP = 1024
UPLOAD_CAP = 8192
UPLOAD_PREFIX = "/limits/upload"

body_router = APIRouter(prefix="/limits")


class Note(BaseModel):
    text: str


@body_router.post("/note")
async def parsed_body(note: Note) -> dict[str, int]:
    return {"length": len(note.text)}


@body_router.post("/raw")
async def raw_body(request: Request) -> dict[str, int]:
    return {"length": len(await request.body())}


@body_router.post("/upload/raw")
async def upload_body(request: Request) -> dict[str, int]:
    return {"length": len(await request.body())}


@pytest.fixture
async def body_app(infra_settings: InfraSettings, make_client: ClientFactory) -> AsyncIterator[FastAPI]:
    infra = infra_settings.model_copy(update={"core": CoreSettings(max_body_bytes=DEFAULT_CAP)})
    app = library_app(infra, routers=[body_router], body_limits={UPLOAD_PREFIX: UPLOAD_CAP})
    await make_client(app)  # runs the lifespan for direct ASGI calls too
    yield app


@pytest.fixture
async def client(body_app: FastAPI, make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(body_app)


def note_of_size(size: int) -> bytes:
    """A JSON document `{"text": "xxx…"}` exactly `size` bytes long."""
    envelope = b'{"text": ""}'
    return envelope[:-2] + b"x" * (size - len(envelope)) + envelope[-2:]


async def chunked(data: bytes, chunk_size: int = 256) -> AsyncIterator[bytes]:
    """The body as a stream, so the request has no Content-Length (`Transfer-Encoding: chunked`)."""
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


def assert_too_large(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"]["code"] == "payload_too_large"
    assert str(limit) in body["error"]["message"]
    assert body["request_id"] == response.headers["x-request-id"]


async def call_asgi(app: FastAPI, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, int]:
    """Send one POST straight to the ASGI app; returns the status, the body and how often it read the request."""
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], body, reads


# --- body limit ---


@pytest.mark.parametrize("path", ["/limits/note", "/limits/raw", "/api/v1/auth/login"])
async def test_declared_length_above_the_cap_is_refused_without_reading(body_app: FastAPI, path: str) -> None:
    status, body, reads = await call_asgi(
        body_app, path, [(b"content-type", b"application/json"), (b"content-length", b"50000000")]
    )

    assert status == 413
    assert b'"payload_too_large"' in body
    assert reads == 0


async def test_declared_length_within_the_cap_is_read(body_app: FastAPI) -> None:
    status, body, reads = await call_asgi(
        body_app, "/limits/raw", [(b"content-type", b"application/json"), (b"content-length", b"2")]
    )

    assert (status, body, reads) == (200, b'{"length":2}', 1)


@pytest.mark.parametrize(
    ("path", "length"), [("/limits/note", DEFAULT_CAP - len(b'{"text": ""}')), ("/limits/raw", DEFAULT_CAP)]
)
async def test_body_up_to_the_cap_is_accepted(client: httpx.AsyncClient, path: str, length: int) -> None:
    for body in (note_of_size(DEFAULT_CAP), chunked(note_of_size(DEFAULT_CAP))):
        response = await client.post(path, content=body, headers={"Content-Type": "application/json"})

        assert response.status_code == 200, response.text
        assert response.json() == {"length": length}


@pytest.mark.parametrize("path", ["/limits/note", "/limits/raw", "/api/v1/auth/login"])
async def test_content_length_above_the_cap_is_413(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(
        path, content=note_of_size(DEFAULT_CAP + 1), headers={"Content-Type": "application/json"}
    )

    assert_too_large(response, DEFAULT_CAP)


@pytest.mark.parametrize("path", ["/limits/note", "/limits/raw", "/api/v1/auth/login"])
async def test_chunked_body_above_the_cap_is_413(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(
        path, content=chunked(note_of_size(4 * DEFAULT_CAP)), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert_too_large(response, DEFAULT_CAP)


async def test_a_route_prefix_gets_its_own_larger_cap(client: httpx.AsyncClient) -> None:
    payload = b"y" * (UPLOAD_CAP - 10)

    upload = await client.post("/limits/upload/raw", content=payload)
    upload_chunked = await client.post("/limits/upload/raw", content=chunked(payload))
    elsewhere = await client.post("/limits/raw", content=payload)

    assert upload.json() == {"length": len(payload)}
    assert upload_chunked.json() == {"length": len(payload)}
    assert_too_large(elsewhere, DEFAULT_CAP)


async def test_the_larger_cap_is_still_a_cap(client: httpx.AsyncClient) -> None:
    payload = b"y" * (UPLOAD_CAP + 1)

    declared = await client.post("/limits/upload/raw", content=payload)
    streamed = await client.post("/limits/upload/raw", content=chunked(payload, chunk_size=1000))

    assert_too_large(declared, UPLOAD_CAP)
    assert_too_large(streamed, UPLOAD_CAP)


# --- rate limit ---


def limited_router(tag: str) -> APIRouter:
    """Routes under a unique prefix, so their Redis buckets belong to this test alone."""
    router = APIRouter(prefix=f"/limited-{tag}")

    def by_client_header(request: Request) -> str:
        return request.headers.get("x-client", "anonymous")

    @router.get("/first", dependencies=[Depends(rate_limit("3/minute"))])
    async def first() -> dict[str, str]:
        return {"route": "first"}

    @router.get("/second", dependencies=[Depends(rate_limit("3/minute"))])
    async def second() -> dict[str, str]:
        return {"route": "second"}

    @router.get("/keyed", dependencies=[Depends(rate_limit("2/minute", key=by_client_header))])
    async def keyed() -> dict[str, str]:
        return {"route": "keyed"}

    @router.get("/items/{item_id}", dependencies=[Depends(rate_limit("2/minute"))])
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    return router


@pytest.fixture
async def limited(
    infra_settings: InfraSettings, make_client: ClientFactory, redis_client: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    tag = uuid.uuid4().hex
    client = await make_client(library_app(infra_settings, routers=[limited_router(tag)]))
    try:
        yield client, f"/limited-{tag}"
    finally:
        async for key in redis_client.scan_iter(match=f"*{tag}*"):
            await redis_client.delete(key)


async def statuses(client: httpx.AsyncClient, path: str, times: int, **options: Any) -> list[int]:
    return [(await client.get(path, **options)).status_code for _ in range(times)]


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60


async def test_requests_beyond_the_rate_get_429_with_retry_after(limited: tuple[httpx.AsyncClient, str]) -> None:
    client, base = limited

    assert await statuses(client, f"{base}/first", 3) == [200, 200, 200]
    refused = await client.get(f"{base}/first")

    assert_rate_limited(refused)
    assert "3 per 1 minute" in refused.json()["error"]["message"]


async def test_each_route_has_its_own_bucket(limited: tuple[httpx.AsyncClient, str]) -> None:
    client, base = limited

    assert await statuses(client, f"{base}/first", 4) == [200, 200, 200, 429]

    assert await statuses(client, f"{base}/second", 4) == [200, 200, 200, 429]


async def test_each_key_has_its_own_bucket(limited: tuple[httpx.AsyncClient, str]) -> None:
    client, base = limited
    path = f"{base}/keyed"

    assert await statuses(client, path, 3, headers={"X-Client": "alpha"}) == [200, 200, 429]

    assert await statuses(client, path, 2, headers={"X-Client": "beta"}) == [200, 200]
    assert_rate_limited(await client.get(path, headers={"X-Client": "alpha"}))
    assert_rate_limited(await client.get(path, headers={"X-Client": "beta"}))


async def test_a_route_with_path_parameters_is_one_bucket(limited: tuple[httpx.AsyncClient, str]) -> None:
    client, base = limited

    assert [(await client.get(f"{base}/items/{number}")).status_code for number in (1, 2, 3)] == [200, 200, 429]


async def test_buckets_live_in_redis_under_the_prefix(
    limited: tuple[httpx.AsyncClient, str], redis_client: Redis
) -> None:
    client, base = limited

    await client.get(f"{base}/first")

    keys = [key async for key in redis_client.scan_iter(match=f"mirante:ratelimit*{base}/first*")]
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("redis_url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "async+redis://127.0.0.1:6379/0"),
        ("rediss://cache.example:6380/1", "async+rediss://cache.example:6380/1"),
        ("unix:///run/redis.sock", "async+redis+unix:///run/redis.sock"),
    ],
)
def test_redis_urls_become_limits_storage_uris(redis_url: str, expected: str) -> None:
    assert limits_storage_uri(redis_url) == expected


@pytest.mark.parametrize("bad", ["memcached://127.0.0.1", "127.0.0.1:6379", ""])
def test_other_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unsupported Redis URL"):
        limits_storage_uri(bad)


# --- overload: never a 500 ---


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_busy"
    assert int(response.headers["retry-after"]) >= 1


@pytest.fixture
def restore_password_gate() -> Iterator[None]:
    yield
    defaults = CoreSettings()
    password_work.configure(defaults.password_hash_concurrency, defaults.password_hash_queue)


async def test_an_unreachable_redis_makes_limited_routes_503(
    infra_settings: InfraSettings, make_client: ClientFactory
) -> None:
    infra = infra_settings.model_copy(update={"redis": RedisSettings(url=f"redis://127.0.0.1:{closed_port()}/0")})
    tag = uuid.uuid4().hex
    client = await make_client(library_app(infra, routers=[limited_router(tag)]))

    assert_busy(await client.get(f"/limited-{tag}/first"))
    assert_busy(await client.post("/api/v1/auth/login", json={"username": "someone", "password": "x" * 12}))


async def test_a_login_burst_gets_answers_not_500(
    infra_settings: InfraSettings, redis_client: Redis, restore_password_gate: None
) -> None:
    stem = f"burst{uuid.uuid4().hex[:8]}"
    app = library_app(infra_settings)

    # The app's own sessions (not the test's shared one): the burst is concurrent, as in production.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            responses = await asyncio.gather(
                *(
                    client.post("/api/v1/auth/login", json={"username": f"{stem}-{index}", "password": "wrong-pass"})
                    for index in range(120)
                )
            )

    codes = Counter(response.status_code for response in responses)
    assert set(codes) <= {401, 503}, codes
    for response in responses:
        if response.status_code == 503:
            assert_busy(response)
    async for key in redis_client.scan_iter(match=f"mirante:ratelimit*{stem}*"):
        await redis_client.delete(key)


async def test_a_saturated_password_gate_refuses_logins_at_once(
    infra_settings: InfraSettings, make_client: ClientFactory, restore_password_gate: None, redis_client: Redis
) -> None:
    infra = infra_settings.model_copy(update={"core": CoreSettings(password_hash_concurrency=1, password_hash_queue=0)})
    client = await make_client(library_app(infra))
    username = f"gate{uuid.uuid4().hex[:8]}"
    credentials = {"username": username, "password": "wrong-password"}

    async with password_work.slot():
        refused = await client.post("/api/v1/auth/login", json=credentials)
    answered = await client.post("/api/v1/auth/login", json=credentials)

    assert_busy(refused)
    assert answered.status_code == 401
    async for key in redis_client.scan_iter(match=f"mirante:ratelimit*{username}*"):
        await redis_client.delete(key)
