"""Every identity endpoint against every kind of caller: the status, and what the caller saw or changed.

The world of each test: suite-wide users (viewer, operator, admin), a tenant-bound admin of `acme`, a staff
admin, a second staff account, users of `acme` and `beta`, keys of `acme` and `beta`, and API keys acting as
callers (viewer, operator and admin keys with `*`, an admin key without `identity:admin`, and an `acme` key
holding only `identity:admin`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_api_key, create_user
from mirante.auth.models import ApiKey, User
from mirante.auth.roles import Role
from mirante.auth.tokens import TokenCodec
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory

PASSWORD = "password-123"
NEW_PASSWORD = "another-password-456"

ANONYMOUS = "anonymous"
USER_CALLERS = ("viewer", "operator", "admin", "acme_admin", "staff")
KEY_CALLERS = ("key_viewer", "key_operator", "key_admin", "key_admin_unscoped", "key_acme_admin")
CALLERS = (ANONYMOUS, *USER_CALLERS, *KEY_CALLERS)
SUITE_ADMINS = frozenset({"admin", "staff", "key_admin"})
TENANT_ADMINS = frozenset({"acme_admin", "key_acme_admin"})
ADMINS = SUITE_ADMINS | TENANT_ADMINS
NOT_ADMINS = frozenset({"viewer", "operator", "key_viewer", "key_operator", "key_admin_unscoped"})


@dataclass
class World:
    client: httpx.AsyncClient
    session: AsyncSession
    stem: str
    users: dict[str, User] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def name(self, label: str) -> str:
        return f"{self.stem}-{label}".replace("_", "-")

    async def user(self, label: str) -> User:
        user = self.users[label]
        await self.session.refresh(user)
        return user

    async def key(self, label: str) -> ApiKey:
        key = self.keys[label]
        await self.session.refresh(key)
        return key


@pytest_asyncio.fixture
async def world(
    infra_settings: InfraSettings, make_client: ClientFactory, db_session: AsyncSession, redis_client: Redis
) -> AsyncIterator[World]:
    app = library_app(infra_settings)
    codec: TokenCodec = app.state.token_codec
    stem = f"mx{uuid.uuid4().hex[:10]}"
    world = World(client=await make_client(app), session=db_session, stem=stem)
    user_specs: dict[str, dict[str, Any]] = {
        "viewer": {"role": Role.viewer},
        "operator": {"role": Role.operator},
        "admin": {"role": Role.admin},
        "acme_admin": {"role": Role.admin, "tenant": "acme"},
        "staff": {"role": Role.admin, "staff": True},
        "staff_target": {"role": Role.admin, "staff": True},
        "acme_user": {"role": Role.viewer, "tenant": "acme"},
        "beta_user": {"role": Role.viewer, "tenant": "beta"},
    }
    for label, spec in user_specs.items():
        user = await create_user(db_session, world.name(label), PASSWORD, **spec)
        world.users[label] = user
        token = codec.issue(user.id, username=user.username, role=user.role, token_version=user.token_version).token
        world.headers[label] = {"Authorization": f"Bearer {token}"}
    key_specs: dict[str, tuple[list[str], Role, str | None]] = {
        "key_viewer": (["*"], Role.viewer, None),
        "key_operator": (["*"], Role.operator, None),
        "key_admin": (["*"], Role.admin, None),
        "key_admin_unscoped": (["telemetry:ingest"], Role.admin, None),
        "key_acme_admin": (["identity:admin"], Role.admin, "acme"),
        "acme_key": (["telemetry:ingest"], Role.viewer, "acme"),
        "beta_key": (["telemetry:ingest"], Role.viewer, "beta"),
    }
    for label, (scopes, role, tenant) in key_specs.items():
        key, plaintext = await create_api_key(db_session, world.name(label), scopes, role=role, tenant=tenant)
        world.keys[label] = key
        world.headers[label] = {"X-API-Key": plaintext}
    world.headers[ANONYMOUS] = {}
    yield world
    async for redis_key in redis_client.scan_iter(match=f"mirante:ratelimit*{stem}*"):
        await redis_client.delete(redis_key)


Check = Callable[[World, str, httpx.Response], Awaitable[None]]


async def nothing_more(world: World, caller: str, response: httpx.Response) -> None:
    """For reads whose status says it all."""


@dataclass(frozen=True)
class Case:
    """One request: how to send it, the status each caller gets, and what must hold afterwards."""

    method: str
    route: str
    expected: dict[str, int]
    target: str | None = None
    query: str = ""
    body: Callable[[World], dict[str, Any]] | None = None
    check: Check = nothing_more

    def path(self, world: World) -> str:
        """The route with the target's id (a user for `{user_id}`, a key for `{key_id}`) and the query."""
        path = self.route
        if self.target in world.users:
            path = path.replace("{user_id}", str(world.users[self.target].id))
        if self.target in world.keys:
            path = path.replace("{key_id}", str(world.keys[self.target].id))
        return path + self.query.replace("{stem}", world.stem)


def statuses(default: int, **overrides: int) -> dict[str, int]:
    """`default` for every caller, 401 for the anonymous one, then `overrides` by caller."""
    table = dict.fromkeys(CALLERS, default)
    table[ANONYMOUS] = 401
    table.update(overrides)
    return table


def admin_statuses(suite: int, tenant: int, **overrides: int) -> dict[str, int]:
    """403 for non-admins, `suite` for suite-wide admins, `tenant` for the `acme` admins."""
    table = statuses(403)
    table.update(dict.fromkeys(SUITE_ADMINS, suite))
    table.update(dict.fromkeys(TENANT_ADMINS, tenant))
    table.update(overrides)
    return table


def listed_usernames(response: httpx.Response) -> set[str]:
    return {user["username"] for user in response.json()["results"]}


async def sees_users_within_reach(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        return
    seen = listed_usernames(response)
    if caller in TENANT_ADMINS:
        assert seen == {world.name("acme_user"), world.name("acme_admin")}
    else:
        assert seen == {world.name(label) for label in world.users}


async def sees_keys_within_reach(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        return
    seen = {key["name"] for key in response.json()["results"]}
    if caller in TENANT_ADMINS:
        assert seen == {world.name("key_acme_admin"), world.name("acme_key")}
    else:
        assert seen == {world.name(label) for label in world.keys}


async def me_names_the_caller(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert response.json()["name"] == world.name(caller)


def tenant_of_created(expected_for_suite: str | None) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        if response.status_code == 201:
            assert response.json()["tenant"] == ("acme" if caller in TENANT_ADMINS else expected_for_suite)

    return check


def user_field(label: str, name: str, changed: Any, unchanged: Any) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        user = await world.user(label)
        assert getattr(user, name) == (changed if response.status_code < 300 else unchanged)

    return check


def key_revoked(label: str) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        key = await world.key(label)
        assert (key.revoked_at is not None) == (response.status_code == 204)

    return check


def password_is(label: str) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        user = await world.user(label)
        expected = NEW_PASSWORD if response.status_code == 200 else PASSWORD
        login = await world.client.post("/api/v1/auth/login", json={"username": user.username, "password": expected})
        assert login.status_code == 200, login.text

    return check


def new_user(world: World, **fields: Any) -> dict[str, Any]:
    return {"username": world.name(f"new-{uuid.uuid4().hex[:6]}"), "password": PASSWORD, **fields}


USER = "/api/v1/users/{user_id}"
KEY = "/api/v1/api-keys/{key_id}"


CASES: dict[str, Case] = {
    "login": Case(
        "POST",
        "/api/v1/auth/login",
        dict.fromkeys(CALLERS, 200),
        body=lambda world: {"username": world.name("acme_user"), "password": PASSWORD},
    ),
    "me": Case("GET", "/api/v1/auth/me", statuses(200), check=me_names_the_caller),
    "signup (off)": Case(
        "POST", "/api/v1/auth/signup", dict.fromkeys(CALLERS, 404), body=lambda world: new_user(world)
    ),
    "change own password (wrong current one)": Case(
        "POST",
        "/api/v1/auth/password",
        statuses(403, **dict.fromkeys(USER_CALLERS, 400)),
        body=lambda world: {"current_password": "not-the-password", "new_password": NEW_PASSWORD},
    ),
    "list users": Case(
        "GET",
        "/api/v1/users",
        admin_statuses(200, 200),
        query="?search={stem}&page_size=200",
        check=sees_users_within_reach,
    ),
    "get a user of acme": Case("GET", USER, admin_statuses(200, 200), target="acme_user"),
    "get a user of beta": Case("GET", USER, admin_statuses(200, 404), target="beta_user"),
    "get a suite-wide staff account": Case("GET", USER, admin_statuses(200, 404), target="staff_target"),
    "create a user of beta": Case(
        "POST",
        "/api/v1/users",
        admin_statuses(201, 403),
        body=lambda world: new_user(world, tenant="beta"),
        check=tenant_of_created("beta"),
    ),
    "create a user without tenant": Case(
        "POST",
        "/api/v1/users",
        admin_statuses(201, 201),
        body=lambda world: new_user(world),
        check=tenant_of_created(None),
    ),
    "create a staff user": Case(
        "POST",
        "/api/v1/users",
        admin_statuses(403, 403, staff=201),
        body=lambda world: new_user(world, is_staff=True),
    ),
    "make a user of acme staff": Case(
        "PATCH",
        USER,
        admin_statuses(403, 403, staff=200),
        target="acme_user",
        body=lambda world: {"is_staff": True},
        check=user_field("acme_user", "is_staff", True, False),
    ),
    "make a user of acme admin": Case(
        "PATCH",
        USER,
        admin_statuses(200, 200),
        target="acme_user",
        body=lambda world: {"role": "admin"},
        check=user_field("acme_user", "role", "admin", "viewer"),
    ),
    "move a user of acme to beta": Case(
        "PATCH",
        USER,
        admin_statuses(200, 403),
        target="acme_user",
        body=lambda world: {"tenant": "beta"},
        check=user_field("acme_user", "tenant", "beta", "acme"),
    ),
    "reset the password of a user of acme": Case(
        "PATCH",
        USER,
        admin_statuses(200, 200),
        target="acme_user",
        body=lambda world: {"password": NEW_PASSWORD},
        check=password_is("acme_user"),
    ),
    "reset the password of a user of beta": Case(
        "PATCH",
        USER,
        admin_statuses(200, 404),
        target="beta_user",
        body=lambda world: {"password": NEW_PASSWORD},
        check=password_is("beta_user"),
    ),
    "reset the password of a staff account": Case(
        "PATCH",
        USER,
        admin_statuses(403, 404, staff=200),
        target="staff_target",
        body=lambda world: {"password": NEW_PASSWORD},
        check=password_is("staff_target"),
    ),
    "deactivate a user of acme": Case(
        "DELETE",
        USER,
        admin_statuses(204, 204),
        target="acme_user",
        check=user_field("acme_user", "is_active", False, True),
    ),
    "deactivate a user of beta": Case(
        "DELETE",
        USER,
        admin_statuses(204, 404),
        target="beta_user",
        check=user_field("beta_user", "is_active", False, True),
    ),
    "deactivate a staff account": Case(
        "DELETE",
        USER,
        admin_statuses(403, 404, staff=204),
        target="staff_target",
        check=user_field("staff_target", "is_active", False, True),
    ),
    "list API keys": Case(
        "GET", "/api/v1/api-keys", admin_statuses(200, 200), query="?page_size=200", check=sees_keys_within_reach
    ),
    "get a key of acme": Case("GET", KEY, admin_statuses(200, 200), target="acme_key"),
    "get a key of beta": Case("GET", KEY, admin_statuses(200, 404), target="beta_key"),
    "create a wildcard key of beta": Case(
        "POST",
        "/api/v1/api-keys",
        admin_statuses(201, 403),
        body=lambda world: {"name": world.name("made"), "scopes": ["*"], "tenant": "beta"},
        check=tenant_of_created("beta"),
    ),
    "create an admin wildcard key without tenant": Case(
        "POST",
        "/api/v1/api-keys",
        admin_statuses(201, 201, key_acme_admin=403),
        body=lambda world: {"name": world.name("made"), "scopes": ["*"], "role": "admin"},
        check=tenant_of_created(None),
    ),
    "create an identity key without tenant": Case(
        "POST",
        "/api/v1/api-keys",
        admin_statuses(201, 201),
        body=lambda world: {"name": world.name("made"), "scopes": ["identity:admin"], "role": "admin"},
        check=tenant_of_created(None),
    ),
    "revoke a key of acme": Case(
        "DELETE", KEY, admin_statuses(204, 204), target="acme_key", check=key_revoked("acme_key")
    ),
    "revoke a key of beta": Case(
        "DELETE", KEY, admin_statuses(204, 404), target="beta_key", check=key_revoked("beta_key")
    ),
}


def test_every_identity_route_is_in_the_matrix() -> None:
    app = library_app(InfraSettings())
    identity_routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    }
    covered = {(case.method, case.route) for case in CASES.values()}

    assert identity_routes == covered


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case_name", list(CASES))
async def test_identity_endpoint_by_caller(world: World, case_name: str, caller: str) -> None:
    case = CASES[case_name]
    body = case.body(world) if case.body is not None else None

    response = await world.client.request(case.method, case.path(world), json=body, headers=world.headers[caller])

    assert response.status_code == case.expected[caller], response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}
    await case.check(world, caller, response)
