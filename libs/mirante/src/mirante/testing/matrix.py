"""Pieces of the authorization matrices (each service's `tests/test_authorization.py`), also used by the plugin.

A matrix sends every route to every kind of caller: hundreds of requests against one world of users, keys and
records. Building that world once per module keeps it fast, so a module holds one session on one transaction
for all its tests (`rolled_back_session`), serves its app on that session (`serve_on_session`), and undoes what
each test's request wrote (`undone`) so the next test meets the same world.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.commands import create_api_key, create_user
from mirante.auth.roles import Role
from mirante.auth.service import issue_token
from mirante.auth.tokens import TokenCodec
from mirante.db import TransactionFactory, get_session, get_transactions
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.web.openapi import served_operations

PASSWORD = "test-password-1234"
"""The password of the users made here (hashing is cheap in tests: see the plugin's `cheap_password_hashing`)."""

METRICS_TOKEN = "metrics-token-of-the-authorization-matrix"
"""The metrics token of a matrix's app (`with_metrics_token`): `/metrics` answers only it."""

Route = tuple[str, str]
"""(upper-case method, path template), e.g. ("GET", "/api/v1/jobs/{job_id}")."""

OPEN_LIBRARY_ROUTES: dict[Route, str] = {
    ("GET", "/health"): "/health",
    ("GET", "/ready"): "/ready",
    ("GET", "/docs"): "/docs",
    ("GET", "/docs/assets/{name}"): "/docs/assets/swagger-init.js",
    ("GET", "/openapi.json"): "/openapi.json",
    ("HEAD", "/openapi.json"): "/openapi.json",
}
"""What every service serves to anyone, by route, with a URL of it: liveness, readiness and the API docs."""

OPEN_PAGE_KIT_ROUTES: dict[Route, str] = {
    ("GET", "/static/{name}"): "/static/mirante.css",
    ("GET", "/login"): "/login",
}
"""What a service with pages also serves to anyone: the pages' files and the sign-in page."""

METRICS_ROUTE: Route = ("GET", "/metrics")


def with_metrics_token(infra: InfraSettings) -> InfraSettings:
    """`infra` with `METRICS_TOKEN` as the metrics token, so that `/metrics` asks for it."""
    core = infra.core.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})
    return infra.model_copy(update={"core": core})


def served_routes(app: FastAPI) -> set[Route]:
    """Every (method, path template) `app` answers, documented or not."""
    return {(method, path) for path, method in served_operations(app)}


def identity_routes(infra: InfraSettings) -> set[Route]:
    """The routes of the library's identity router, which every service mounts (`/api/v1/auth/...`, `/users`,
    `/api-keys`); their own matrix is the library's (`libs/mirante/tests/test_auth_authorization.py`)."""
    return {route for route in served_routes(library_app(infra)) if route[1].startswith("/api/v1/")}


def routes_to_cover(app: FastAPI, infra: InfraSettings) -> set[Route]:
    """What a service's matrix must name: every route `app` serves but the identity router's (`identity_routes`)."""
    return served_routes(app) - identity_routes(infra)


@asynccontextmanager
async def rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back at the end of the block (commits become savepoints)."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield session
        finally:
            await session.close()
            if transaction.is_active:
                await transaction.rollback()


async def serve_on_session(stack: AsyncExitStack, app: FastAPI, session: AsyncSession) -> httpx.AsyncClient:
    """An HTTP client on `app`, its lifespan running until `stack` closes.

    Requests share `session`, each inside a savepoint, so what they write is visible to the test and goes with
    the session's rollback.
    """

    async def test_session() -> AsyncIterator[AsyncSession]:
        async with session.begin_nested():
            yield session

    async def test_transactions() -> TransactionFactory:
        @asynccontextmanager
        async def transaction() -> AsyncIterator[AsyncSession]:
            async with session.begin_nested():
                yield session

        return transaction

    app.dependency_overrides[get_session] = test_session
    app.dependency_overrides[get_transactions] = test_transactions
    await stack.enter_async_context(app.router.lifespan_context(app))
    transport = httpx.ASGITransport(app=app)
    return await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://testserver"))


@asynccontextmanager
async def undone(session: AsyncSession) -> AsyncIterator[None]:
    """Whatever the block writes through `session` (requests of a client on it included) is rolled back after it."""
    savepoint = await session.begin_nested()
    try:
        yield
    finally:
        if savepoint.is_active:
            await savepoint.rollback()


async def user_headers(
    session: AsyncSession,
    codec: TokenCodec,
    username: str,
    role: Role | str = Role.viewer,
    *,
    staff: bool = False,
    tenant: str | None = None,
) -> dict[str, str]:
    """The `Authorization` header of a new user made in `session`."""
    user = await create_user(session, username=username, password=PASSWORD, role=role, staff=staff, tenant=tenant)
    return {"Authorization": f"Bearer {issue_token(codec, user).token}"}


async def api_key_headers(
    session: AsyncSession,
    name: str,
    scopes: list[str],
    role: Role = Role.viewer,
    *,
    tenant: str | None = None,
) -> dict[str, str]:
    """The `X-API-Key` header of a new API key made in `session`."""
    _, plaintext = await create_api_key(session, name, scopes, role=role, tenant=tenant)
    return {"X-API-Key": plaintext}


@dataclass
class World:
    """What a matrix module builds once: a client on its app, the session under both, and its callers."""

    client: httpx.AsyncClient
    session: AsyncSession
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each caller's credentials, by caller name (`{}` for the anonymous one)."""
    names: dict[str, str] = field(default_factory=dict)
    """Each caller's user or key name."""
    ids: dict[str, Any] = field(default_factory=dict)
    """Values a case's URL takes by name (`/api/v1/jobs/{job_id}`), and anything else its checks need."""


KeySpec = tuple[list[str], Role, str | None]
"""An API key of a matrix: its scopes, its role and its tenant (None: the whole suite)."""


async def enrol_callers(
    world: World,
    codec: TokenCodec,
    stem: str,
    users: Mapping[str, Mapping[str, Any]],
    keys: Mapping[str, KeySpec],
) -> None:
    """A user per entry of `users` (`user_headers`' keyword arguments) and an API key per entry of `keys`, each named
    `{stem}-{caller}` in `world.session`, their names and credentials in `world.names` and `world.headers`."""
    for caller, spec in users.items():
        world.names[caller] = f"{stem}-{caller}"
        world.headers[caller] = await user_headers(world.session, codec, world.names[caller], **spec)
    for caller, (scopes, role, tenant) in keys.items():
        world.names[caller] = f"{stem}-{caller}"
        world.headers[caller] = await api_key_headers(world.session, world.names[caller], scopes, role, tenant=tenant)


Check = Callable[[World, str, httpx.Response], Awaitable[None]]
"""What must hold after a case's request, given the world, the caller and the answer."""


async def nothing_more(world: World, caller: str, response: httpx.Response) -> None:
    """For requests whose status says it all."""


@dataclass(frozen=True)
class Case:
    """One request: how to send it, the status each caller gets, and what must hold afterwards."""

    method: str
    route: str
    """The path template the app serves, as `served_routes` names it."""
    expected: Mapping[str, int]
    url: str | None = None
    """The URL sent, `{name}` filled from `World.ids` (the route itself when None), query string included."""
    json: Callable[[World], Any] | None = None
    content: Callable[[World], bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent besides the caller's credentials."""
    check: Check = nothing_more

    async def send(self, world: World, caller: str) -> httpx.Response:
        url = (self.url or self.route).format(**world.ids)
        headers = {**self.headers, **world.headers[caller]}
        if self.content is not None:
            return await world.client.request(self.method, url, content=self.content(world), headers=headers)
        body = self.json(world) if self.json is not None else None
        return await world.client.request(self.method, url, json=body, headers=headers)


async def run_case(world: World, case: Case, caller: str) -> httpx.Response:
    """Send `case` as `caller`, check its status, error envelope and `check`, then undo what it wrote."""
    async with undone(world.session):
        response = await case.send(world, caller)
        assert response.status_code == case.expected[caller], f"{caller}: {response.text}"
        if response.status_code >= 400 and case.method != "HEAD":
            assert set(response.json()["error"]) >= {"code", "message"}, response.text
        await case.check(world, caller, response)
    return response


def library_cases(callers: Collection[str], scraper: str) -> dict[str, Case]:
    """The cases every service's matrix shares: the library's and the page kit's open routes (200 for every caller)
    and `/metrics` (200 for `scraper`, the caller sending `METRICS_TOKEN`, and 401 for the others)."""
    return {
        **{
            f"{method} {route}": Case(method, route, dict.fromkeys(callers, 200), url=url)
            for (method, route), url in (OPEN_LIBRARY_ROUTES | OPEN_PAGE_KIT_ROUTES).items()
        },
        "metrics": Case(*METRICS_ROUTE, {**dict.fromkeys(callers, 401), scraper: 200}),
    }
