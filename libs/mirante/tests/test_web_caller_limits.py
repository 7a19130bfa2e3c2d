"""Quotas per caller (a user, an API key, a machine) across routes, kept in Redis: 429 with `Retry-After`."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_api_key
from mirante.auth.principal import Principal, rate_limited
from mirante.devstack import StackUrls
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory, HeadersFactory
from mirante.web.errors import RateLimitedError
from mirante.web.ratelimit import RateLimiter, limit_caller, parse_rate, rate_limit_prefix


def quota_router(scope: str) -> APIRouter:
    """Routes drawing on the quotas of one scope, unique to the test, so its Redis buckets are its own."""
    router = APIRouter(prefix="/quota")
    per_user = rate_limited("3/minute", "2/minute", scope=scope)
    hourly = rate_limited("2/hour", scope=f"{scope}-hourly")

    def setting(request: Request) -> str | None:
        rate: str | None = request.app.state.test_user_rate
        return rate

    from_settings = rate_limited(setting, scope=f"{scope}-settings")

    @router.get("/first")
    async def first(principal: Annotated[Principal, Depends(per_user)]) -> dict[str, str]:
        return {"route": "first", "caller": principal.name}

    @router.get("/second", dependencies=[Depends(per_user)])
    async def second() -> dict[str, str]:
        return {"route": "second"}

    @router.get("/hourly", dependencies=[Depends(hourly)])
    async def hourly_route() -> dict[str, str]:
        return {"route": "hourly"}

    @router.get("/configured", dependencies=[Depends(from_settings)])
    async def configured() -> dict[str, str]:
        return {"route": "configured"}

    async def machine_quota(request: Request, x_machine: Annotated[str, Header()]) -> str:
        await limit_caller(request, "2/minute", "machine", x_machine, scope=scope)
        return x_machine

    async def webhook_quota(request: Request, x_machine: Annotated[str, Header()]) -> str:
        await limit_caller(request, None, "machine", x_machine, scope=scope)
        return x_machine

    @router.get("/machine")
    async def machine(caller: Annotated[str, Depends(machine_quota)]) -> dict[str, str]:
        return {"machine": caller}

    @router.post("/webhook")
    async def webhook(caller: Annotated[str, Depends(webhook_quota)]) -> dict[str, str]:
        return {"machine": caller}

    return router


@pytest.fixture
async def quota(
    infra_settings: InfraSettings, make_client: ClientFactory, redis_client: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    tag = uuid.uuid4().hex
    app = library_app(infra_settings, routers=[quota_router(f"quota-{tag}")])
    app.state.test_user_rate = "1/minute"
    client = await make_client(app)
    try:
        yield client, app
    finally:
        async for key in redis_client.scan_iter(match=f"*{tag}*"):
            await redis_client.delete(key)


async def statuses(client: httpx.AsyncClient, path: str, times: int, headers: dict[str, str]) -> list[int]:
    return [(await client.get(path, headers=headers)).status_code for _ in range(times)]


def retry_after(response: httpx.Response) -> int:
    """The refusal's `Retry-After` in seconds, after checking it is the library's 429 envelope."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"]["code"] == "rate_limited"
    assert body["request_id"] == response.headers["x-request-id"]
    return int(response.headers["retry-after"])


async def test_a_user_quota_spans_every_route_of_its_scope(
    quota: tuple[httpx.AsyncClient, FastAPI], auth_headers: HeadersFactory
) -> None:
    client, _ = quota
    headers = await auth_headers()

    assert await statuses(client, "/quota/first", 2, headers) == [200, 200]
    assert await statuses(client, "/quota/second", 1, headers) == [200]
    refused = await client.get("/quota/first", headers=headers)

    # A moving window of a minute that was filled a moment ago frees its first slot a minute after that slot.
    assert 50 < retry_after(refused) <= 60
    assert "3 per 1 minute" in refused.json()["error"]["message"]
    assert retry_after(await client.get("/quota/second", headers=headers)) <= 60


async def test_each_user_and_each_api_key_has_its_own_bucket(
    quota: tuple[httpx.AsyncClient, FastAPI], auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    client, _ = quota
    alice, bob = await auth_headers(), await auth_headers()
    _, first_key = await create_api_key(db_session, name=f"quota-{uuid.uuid4().hex[:8]}", scopes=["*"])
    _, second_key = await create_api_key(db_session, name=f"quota-{uuid.uuid4().hex[:8]}", scopes=["*"])

    assert await statuses(client, "/quota/first", 4, alice) == [200, 200, 200, 429]
    assert await statuses(client, "/quota/first", 3, bob) == [200, 200, 200]
    assert await statuses(client, "/quota/first", 3, {"X-API-Key": first_key}) == [200, 200, 429]
    assert await statuses(client, "/quota/second", 2, {"X-API-Key": second_key}) == [200, 200]


async def test_retry_after_counts_down_the_whole_window(
    quota: tuple[httpx.AsyncClient, FastAPI], auth_headers: HeadersFactory
) -> None:
    client, _ = quota
    headers = await auth_headers()

    assert await statuses(client, "/quota/hourly", 2, headers) == [200, 200]
    refused = await client.get("/quota/hourly", headers=headers)

    assert 3500 < retry_after(refused) <= 3600
    assert "2 per 1 hour" in refused.json()["error"]["message"]


async def test_a_rate_read_from_the_app_applies_per_request(
    quota: tuple[httpx.AsyncClient, FastAPI], auth_headers: HeadersFactory
) -> None:
    client, app = quota
    limited, unlimited = await auth_headers(), await auth_headers()

    assert await statuses(client, "/quota/configured", 2, limited) == [200, 429]
    app.state.test_user_rate = None
    assert await statuses(client, "/quota/configured", 5, unlimited) == [200] * 5


async def test_machines_are_counted_by_id_and_their_webhooks_are_not(
    quota: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, _ = quota
    first, second = {"X-Machine": "mv_000000000001"}, {"X-Machine": "mv_000000000002"}

    assert await statuses(client, "/quota/machine", 3, first) == [200, 200, 429]
    assert await statuses(client, "/quota/machine", 2, second) == [200, 200]
    webhooks = [(await client.post("/quota/webhook", headers=first)).status_code for _ in range(10)]
    assert webhooks == [200] * 10


async def test_an_anonymous_request_is_refused_before_it_is_counted(
    quota: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, _ = quota

    response = await client.get("/quota/first")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("bad", ["lots", "100", "100/fortnight", ""])
def test_an_unreadable_rate_is_refused_when_declared(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate(bad)
    with pytest.raises(ValueError, match="is not a rate"):
        rate_limited(bad)
    with pytest.raises(ValueError, match="is not a rate"):
        rate_limited("10/minute", bad)


def test_readable_rates_parse() -> None:
    assert parse_rate("100/minute").amount == 100
    assert parse_rate("1000 per hour").amount == 1000


async def test_suites_on_different_databases_keep_their_own_buckets(mirante_urls: StackUrls) -> None:
    redis_url = mirante_urls.redis_url
    assert rate_limit_prefix("postgresql://u@db:5432/plant_a") != rate_limit_prefix("postgresql://u@db/plant_b")
    assert rate_limit_prefix("postgresql://u@/plant_a?host=/run/pg") == rate_limit_prefix("postgresql://x@h/plant_a")
    scope = f"shared-{uuid.uuid4().hex}"
    rate = parse_rate("1/minute")
    plant_a = RateLimiter(redis_url, rate_limit_prefix("postgresql://u@db/plant_a"))
    plant_b = RateLimiter(redis_url, rate_limit_prefix("postgresql://u@db/plant_b"))
    try:
        await plant_a.hit(rate, scope, "user", "1")
        await plant_b.hit(rate, scope, "user", "1")  # user 1 of another database: not the same caller
        with pytest.raises(RateLimitedError):
            await plant_a.hit(rate, scope, "user", "1")
    finally:
        await plant_a.aclose()
        await plant_b.aclose()
