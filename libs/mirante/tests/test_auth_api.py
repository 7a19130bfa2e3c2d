"""The identity API over HTTP: login, rate limit, /auth/me, roles and scopes, users, signup, API keys."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, Depends
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.apikeys import hash_api_key
from mirante.auth.commands import create_api_key, create_user
from mirante.auth.models import ApiKey, User
from mirante.auth.passwords import PasswordHasher, ScryptParameters, set_password_hasher
from mirante.auth.principal import Principal, require_role, require_scope, require_staff
from mirante.auth.roles import Role
from mirante.auth.tokens import TokenCodec
from mirante.settings import CoreSettings, InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory

PASSWORD = "password-123"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
SIGNUP_TEST_LIMIT = "1000/minute"

guarded = APIRouter(prefix="/guarded")


@guarded.get("/operator")
async def operator_only(principal: Annotated[Principal, Depends(require_role(Role.operator))]) -> dict[str, str]:
    return {"name": principal.name}


@guarded.get("/staff")
async def staff_only(principal: Annotated[Principal, Depends(require_staff())]) -> dict[str, str]:
    return {"name": principal.name}


@guarded.get("/scoped")
async def scoped(principal: Annotated[Principal, Depends(require_scope("things:write"))]) -> dict[str, str]:
    return {"name": principal.name}


@pytest_asyncio.fixture
async def usernames(redis_client: Redis) -> AsyncIterator[list[str]]:
    """Unique usernames for the test; their rate-limit keys (and the signup test's) are deleted afterwards."""
    names: list[str] = []
    yield names
    patterns = [f"mirante:ratelimit*{name.lower()}*" for name in names]
    patterns.append(f"mirante:ratelimit*/auth/signup/*/{SIGNUP_TEST_LIMIT.replace('/', '/1/')}")
    for pattern in patterns:
        async for key in redis_client.scan_iter(match=pattern):
            await redis_client.delete(key)


@dataclass
class Api:
    client: httpx.AsyncClient
    codec: TokenCodec
    session: AsyncSession
    usernames: list[str]

    def unique(self, stem: str = "user") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        self.usernames.append(name)
        return name

    async def user(self, role: Role = Role.viewer, *, is_active: bool = True, **fields: Any) -> User:
        user = await create_user(self.session, self.unique(role.value), PASSWORD, role=role, **fields)
        if not is_active:
            user.is_active = False
            await self.session.flush()
        return user

    def bearer(self, user: User) -> dict[str, str]:
        token, _ = self.codec.issue(user.id, username=user.username, role=user.role, token_version=user.token_version)
        return {"Authorization": f"Bearer {token}"}

    async def admin_headers(self, *, staff: bool = False) -> dict[str, str]:
        return self.bearer(await self.user(Role.admin, staff=staff))


async def _api(
    infra: InfraSettings, make_client: ClientFactory, session: AsyncSession, names: list[str], **core: Any
) -> Api:
    settings = infra.model_copy(update={"core": CoreSettings(**core)}) if core else infra
    app = library_app(settings, routers=[guarded])
    client = await make_client(app)
    return Api(client=client, codec=app.state.token_codec, session=session, usernames=names)


@pytest_asyncio.fixture
async def api(
    infra_settings: InfraSettings, make_client: ClientFactory, db_session: AsyncSession, usernames: list[str]
) -> Api:
    return await _api(infra_settings, make_client, db_session, usernames)


def no_secrets(response: httpx.Response) -> None:
    assert "password_hash" not in response.text
    assert "key_hash" not in response.text


# --- login ---


async def test_login_with_the_oauth2_form(api: Api) -> None:
    user = await api.user(Role.operator, tenant="acme")

    response = await api.client.post(LOGIN, data={"username": user.username, "password": PASSWORD})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    claims = api.codec.decode(body["access_token"])
    assert (claims.user_id, claims.username, claims.role, claims.tenant) == (user.id, user.username, "operator", "acme")
    await api.session.refresh(user)
    assert user.last_login_at is not None


async def test_login_with_json_and_any_username_case(api: Api) -> None:
    user = await api.user()

    response = await api.client.post(LOGIN, json={"username": user.username.upper(), "password": PASSWORD})

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"access_token", "token_type", "expires_in"}
    me = await api.client.get(ME, headers={"Authorization": f"Bearer {response.json()['access_token']}"})
    assert me.json()["name"] == user.username


async def test_bad_credentials_share_one_answer(api: Api) -> None:
    user = await api.user()
    inactive = await api.user(is_active=False)
    attempts = {
        "wrong password": {"username": user.username, "password": "not-the-password"},
        "unknown user": {"username": api.unique("ghost"), "password": PASSWORD},
        "inactive user": {"username": inactive.username, "password": PASSWORD},
    }

    for case, credentials in attempts.items():
        response = await api.client.post(LOGIN, data=credentials)
        assert response.status_code == 401, case
        assert response.json()["error"]["message"] == "invalid username or password", case
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_user_costs_a_password_verification(api: Api) -> None:
    set_password_hasher(PasswordHasher(ScryptParameters(n=2**14, r=8, p=1)))
    user = await api.user()
    ghost = api.unique("ghost")

    async def timed(username: str) -> float:
        started = time.perf_counter()
        response = await api.client.post(LOGIN, json={"username": username, "password": "wrong-password"})
        assert response.status_code == 401
        return time.perf_counter() - started

    await timed(ghost)  # builds the dummy hash once
    wrong_password = statistics.median([await timed(user.username) for _ in range(3)])
    unknown_user = statistics.median([await timed(ghost) for _ in range(3)])

    assert unknown_user > 0.5 * wrong_password


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        ({"data": {"username": "someone"}}, 422, "body.password"),
        ({"json": {"password": PASSWORD}}, 422, "body.username"),
        ({"json": {"username": "", "password": PASSWORD}}, 422, "body.username"),
        ({"json": ["username", "password"]}, 422, "body"),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422, "body"),
        ({"data": {"username": "a", "password": "b", "grant_type": "client_credentials"}}, 422, "body.grant_type"),
        ({"content": b"username=a&password=b", "headers": {"Content-Type": "text/plain"}}, 415, None),
        ({"content": b"", "headers": {}}, 415, None),
    ],
)
async def test_login_input_errors(api: Api, content: dict[str, Any], status: int, field: str | None) -> None:
    response = await api.client.post(LOGIN, **content)

    assert response.status_code == status, response.text
    if field is not None:
        assert field in [detail["field"] for detail in response.json()["error"]["details"]]


async def test_login_rate_limit_per_address_and_username(
    infra_settings: InfraSettings, make_client: ClientFactory, db_session: AsyncSession, usernames: list[str]
) -> None:
    api = await _api(infra_settings, make_client, db_session, usernames, login_rate_limit="2/minute")
    user = await api.user()
    credentials = {"username": user.username, "password": PASSWORD}

    assert (await api.client.post(LOGIN, data=credentials)).status_code == 200
    assert (await api.client.post(LOGIN, json={**credentials, "password": "wrong-password"})).status_code == 401
    refused = await api.client.post(LOGIN, data=credentials)

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"
    other = await api.user()
    assert (await api.client.post(LOGIN, data={"username": other.username, "password": PASSWORD})).status_code == 200


# --- /auth/me and credentials ---


async def test_me_with_a_token(api: Api) -> None:
    user = await api.user(Role.operator, tenant="acme", staff=True)

    response = await api.client.get(ME, headers=api.bearer(user))

    assert response.json() == {
        "kind": "user",
        "id": user.id,
        "name": user.username,
        "role": "operator",
        "is_staff": True,
        "tenant": "acme",
        "scopes": [],
    }


async def test_me_with_an_api_key_in_either_header(api: Api) -> None:
    key, plaintext = await create_api_key(api.session, "gateway", ["telemetry:ingest"], role="operator")

    for headers in ({"X-API-Key": plaintext}, {"Authorization": f"Api-Key {plaintext}"}):
        response = await api.client.get(ME, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "kind": "api_key",
            "id": key.id,
            "name": "gateway",
            "role": "operator",
            "is_staff": False,
            "tenant": None,
            "scopes": ["telemetry:ingest"],
        }
    await api.session.refresh(key)
    assert key.last_used_at is not None


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "authentication required"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "unsupported Authorization scheme"),
        ({"Authorization": "Bearer"}, "invalid token: malformed token"),
        ({"X-API-Key": "mk_short"}, "malformed API key"),
        ({"X-API-Key": "mk_abcdefgh_" + "x" * 43}, "invalid API key"),
    ],
)
async def test_missing_or_bad_credentials_are_401(api: Api, headers: dict[str, str], message: str) -> None:
    response = await api.client.get(ME, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith(message)
    assert "WWW-Authenticate" in response.headers


async def test_token_and_api_key_together_are_refused(api: Api) -> None:
    _, plaintext = await create_api_key(api.session, "both", ["*"])
    headers = {**api.bearer(await api.user()), "X-API-Key": plaintext}

    response = await api.client.get(ME, headers=headers)

    assert response.status_code == 401
    assert "not both" in response.json()["error"]["message"]


KEY_FORMS = {
    "x-api-key": lambda key: {"X-API-Key": key},
    "bearer": lambda key: {"Authorization": f"Bearer {key}"},
    "api-key scheme": lambda key: {"Authorization": f"Api-Key {key}"},
}


@pytest.mark.parametrize("form", KEY_FORMS)
async def test_an_api_key_is_accepted_in_every_header_form(api: Api, form: str) -> None:
    _, viewer_key = await create_api_key(api.session, "reader", ["things:read"])
    _, writer_key = await create_api_key(api.session, "writer", ["things:write"], role="operator")
    headers = KEY_FORMS[form]

    me = await api.client.get(ME, headers=headers(writer_key))
    assert me.status_code == 200, me.text
    assert (me.json()["kind"], me.json()["name"]) == ("api_key", "writer")
    assert (await api.client.get("/guarded/scoped", headers=headers(writer_key))).status_code == 200
    wrong_scope = await api.client.get("/guarded/scoped", headers=headers(viewer_key))
    assert wrong_scope.status_code == 403
    assert wrong_scope.json()["error"]["message"] == "this API key lacks the scope 'things:write'"
    assert (await api.client.get("/guarded/operator", headers=headers(viewer_key))).status_code == 403


@pytest.mark.parametrize("form", KEY_FORMS)
async def test_revoked_expired_and_wrong_keys_are_refused_in_every_header_form(api: Api, form: str) -> None:
    revoked, revoked_plaintext = await create_api_key(api.session, "old", ["*"])
    expired, expired_plaintext = await create_api_key(
        api.session, "short-lived", ["*"], expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    _, good = await create_api_key(api.session, "good", ["*"])
    await api.session.execute(update(ApiKey).where(ApiKey.id == revoked.id).values(revoked_at=datetime.now(UTC)))
    await api.session.execute(
        update(ApiKey).where(ApiKey.id == expired.id).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    cases = [
        (revoked_plaintext, "API key has been revoked"),
        (expired_plaintext, "API key has expired"),
        (tampered, "invalid API key"),
        ("mk_short", "malformed API key"),
    ]

    for plaintext, message in cases:
        response = await api.client.get(ME, headers=KEY_FORMS[form](plaintext))
        assert response.status_code == 401, (plaintext, response.text)
        assert response.json()["error"] == {"code": "invalid_api_key", "message": message}
        assert response.headers["WWW-Authenticate"].startswith("Api-Key")


async def test_the_same_key_in_both_headers_is_accepted_and_different_ones_are_refused(api: Api) -> None:
    _, first = await create_api_key(api.session, "first", ["*"])
    _, second = await create_api_key(api.session, "second", ["*"])

    same = await api.client.get(ME, headers={"Authorization": f"Bearer {first}", "X-API-Key": first})
    assert same.status_code == 200, same.text
    assert same.json()["name"] == "first"
    for scheme in ("Bearer", "Api-Key"):
        response = await api.client.get(ME, headers={"Authorization": f"{scheme} {first}", "X-API-Key": second})
        assert response.status_code == 401
        assert response.json()["error"]["message"] == (
            "Authorization and X-API-Key carry different API keys: send one key"
        )
        assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize("value", ["not-a-token", "abc.def", "eyJ..", "Zm9v.YmFy.YmF6.cXV4", "mkx_abcdefgh_secret"])
async def test_a_bearer_value_that_is_neither_a_token_nor_a_key_is_a_clear_401(api: Api, value: str) -> None:
    response = await api.client.get(ME, headers={"Authorization": f"Bearer {value}"})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_token"
    assert error["message"].startswith("invalid token: malformed token")
    if value.count(".") != 2:
        assert "an access token from /api/v1/auth/login or an API key (mk_...)" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="mirante", error="invalid_token"')


async def test_right_prefix_with_wrong_secret_is_refused(api: Api) -> None:
    _, plaintext = await create_api_key(api.session, "guessed", ["*"])
    guessed = plaintext[:-4] + ("AAAA" if not plaintext.endswith("AAAA") else "BBBB")

    response = await api.client.get(ME, headers={"X-API-Key": guessed})

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid API key"


async def test_revoked_and_expired_api_keys_are_refused(api: Api) -> None:
    admin = await api.admin_headers()
    revoked, revoked_plaintext = await create_api_key(api.session, "old", ["*"])
    expired, expired_plaintext = await create_api_key(
        api.session, "short-lived", ["*"], expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    assert (await api.client.get(ME, headers={"X-API-Key": revoked_plaintext})).status_code == 200

    assert (await api.client.delete(f"/api/v1/api-keys/{revoked.id}", headers=admin)).status_code == 204
    await api.session.execute(
        update(ApiKey).where(ApiKey.id == expired.id).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )

    for plaintext, message in ((revoked_plaintext, "revoked"), (expired_plaintext, "expired")):
        response = await api.client.get(ME, headers={"X-API-Key": plaintext})
        assert response.status_code == 401
        assert message in response.json()["error"]["message"]
        assert response.headers["WWW-Authenticate"].startswith("Api-Key")


async def test_deactivated_user_token_stops_working(api: Api) -> None:
    admin = await api.admin_headers()
    user = await api.user()
    headers = api.bearer(user)
    assert (await api.client.get(ME, headers=headers)).status_code == 200

    assert (await api.client.delete(f"/api/v1/users/{user.id}", headers=admin)).status_code == 204

    response = await api.client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid token: user account is inactive"


async def test_users_change_their_own_password(api: Api) -> None:
    user = await api.user()
    headers = api.bearer(user)
    url = "/api/v1/auth/password"

    wrong = await api.client.post(
        url, json={"current_password": "not-it", "new_password": "brand-new-pass"}, headers=headers
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "wrong_current_password"
    too_short = await api.client.post(
        url, json={"current_password": PASSWORD, "new_password": "short"}, headers=headers
    )
    assert too_short.status_code == 422
    changed = await api.client.post(
        url, json={"current_password": PASSWORD, "new_password": "brand-new-pass"}, headers=headers
    )
    assert changed.status_code == 204, changed.text

    old = await api.client.post(LOGIN, data={"username": user.username, "password": PASSWORD})
    new = await api.client.post(LOGIN, data={"username": user.username, "password": "brand-new-pass"})
    assert (old.status_code, new.status_code) == (401, 200)
    _, key = await create_api_key(api.session, "machine", ["*"], role="admin")
    by_key = await api.client.post(
        url, json={"current_password": "x", "new_password": "brand-new-pass"}, headers={"X-API-Key": key}
    )
    assert by_key.status_code == 403


# --- roles, staff and scopes ---


async def test_role_checks(api: Api) -> None:
    viewer, operator, admin = [await api.user(role) for role in (Role.viewer, Role.operator, Role.admin)]

    for user, operator_status, users_status in ((viewer, 403, 403), (operator, 200, 403), (admin, 200, 200)):
        headers = api.bearer(user)
        assert (await api.client.get("/guarded/operator", headers=headers)).status_code == operator_status
        assert (await api.client.get("/api/v1/users", headers=headers)).status_code == users_status

    refused = await api.client.get("/api/v1/users", headers=api.bearer(operator))
    assert refused.json()["error"]["message"] == "this action needs the admin role (you have operator)"


async def test_a_role_change_applies_to_existing_tokens(api: Api) -> None:
    admin = await api.admin_headers()
    user = await api.user(Role.viewer)
    headers = api.bearer(user)
    assert (await api.client.get("/guarded/operator", headers=headers)).status_code == 403

    await api.client.patch(f"/api/v1/users/{user.id}", json={"role": "operator"}, headers=admin)

    assert (await api.client.get("/guarded/operator", headers=headers)).status_code == 200


async def test_api_keys_have_roles_and_scopes(api: Api) -> None:
    _, viewer_key = await create_api_key(api.session, "reader", ["things:read"])
    _, writer_key = await create_api_key(api.session, "writer", ["things:write"], role="operator")
    _, admin_key = await create_api_key(api.session, "automation", ["*"], role="admin")

    assert (await api.client.get("/guarded/operator", headers={"X-API-Key": viewer_key})).status_code == 403
    assert (await api.client.get("/guarded/operator", headers={"X-API-Key": writer_key})).status_code == 200
    assert (await api.client.get("/guarded/scoped", headers={"X-API-Key": viewer_key})).status_code == 403
    assert (await api.client.get("/guarded/scoped", headers={"X-API-Key": writer_key})).status_code == 200
    assert (await api.client.get("/guarded/scoped", headers={"X-API-Key": admin_key})).status_code == 200
    assert (await api.client.get("/api/v1/users", headers={"X-API-Key": admin_key})).status_code == 200
    # Users have no scopes: their role governs them.
    assert (await api.client.get("/guarded/scoped", headers=api.bearer(await api.user()))).status_code == 200


async def test_staff_check(api: Api) -> None:
    staff = await api.user(Role.viewer, staff=True)
    admin = await api.user(Role.admin)
    _, key = await create_api_key(api.session, "k", ["*"], role="admin")

    assert (await api.client.get("/guarded/staff", headers=api.bearer(staff))).status_code == 200
    assert (await api.client.get("/guarded/staff", headers=api.bearer(admin))).status_code == 403
    assert (await api.client.get("/guarded/staff", headers={"X-API-Key": key})).status_code == 403


# --- users ---


async def test_users_create_get_and_duplicates(api: Api) -> None:
    admin = await api.admin_headers(staff=True)
    name = api.unique("New.User")
    payload = {"username": name, "password": PASSWORD, "email": "new@example.com", "role": "operator"}

    created = await api.client.post(
        "/api/v1/users", json={**payload, "tenant": "acme", "is_staff": True}, headers=admin
    )

    assert created.status_code == 201, created.text
    no_secrets(created)
    body = created.json()
    assert (body["username"], body["role"], body["tenant"], body["is_staff"]) == (
        name.lower(),
        "operator",
        "acme",
        True,
    )
    fetched = await api.client.get(f"/api/v1/users/{body['id']}", headers=admin)
    assert fetched.json() == body
    duplicate = await api.client.post("/api/v1/users", json={**payload, "username": name.upper()}, headers=admin)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "duplicate_username"
    assert (await api.client.get("/api/v1/users/999999999", headers=admin)).status_code == 404
    assert (await api.client.get("/api/v1/users/0", headers=admin)).status_code == 422
    assert (await api.client.get(f"/api/v1/users/{2**63}", headers=admin)).status_code == 422


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "ab"}, "body.username"),
        ({"username": "has space"}, "body.username"),
        ({"username": "-leading-dash"}, "body.username"),
        ({"username": "x" * 151}, "body.username"),
        ({"password": "short"}, "body.password"),
        ({"password": "p" * 1025}, "body.password"),
        ({"role": "root"}, "body.role"),
        ({"tenant": "Has Caps"}, "body.tenant"),
        ({"tenant": "1starts-with-digit"}, "body.tenant"),
        ({"email": "not-an-email"}, "body.email"),
        ({"password_hash": "scrypt$1$1$1$a$b"}, "body.password_hash"),
        ({"id": 1}, "body.id"),
        ({"last_login_at": "2020-01-01T00:00:00Z"}, "body.last_login_at"),
    ],
)
async def test_user_create_validation(api: Api, change: dict[str, Any], field: str) -> None:
    payload = {"username": api.unique("valid"), "password": PASSWORD, **change}

    response = await api.client.post("/api/v1/users", json=payload, headers=await api.admin_headers())

    assert response.status_code == 422, response.text
    assert field in [detail["field"] for detail in response.json()["error"]["details"]]


async def test_users_list_filters_and_pagination(api: Api) -> None:
    admin = await api.admin_headers()
    stem = f"lst{uuid.uuid4().hex[:6]}"
    for index in range(3):
        await create_user(api.session, f"{stem}-op{index}", PASSWORD, role="operator")
    inactive = await create_user(api.session, f"{stem}-off", PASSWORD, role="operator")
    await api.session.execute(update(User).where(User.id == inactive.id).values(is_active=False))

    first = await api.client.get(
        "/api/v1/users", params={"search": stem.upper(), "role": "operator", "page_size": 2}, headers=admin
    )
    assert first.status_code == 200, first.text
    page = first.json()
    no_secrets(first)
    assert page["count"] == 4
    assert [user["username"] for user in page["results"]] == [f"{stem}-op0", f"{stem}-op1"]
    assert page["previous"] is None and "page=2" in page["next"]
    second = (await api.client.get(page["next"], headers=admin)).json()
    assert [user["username"] for user in second["results"]] == [f"{stem}-op2", f"{stem}-off"]
    assert second["next"] is None and second["previous"] is not None

    active = await api.client.get("/api/v1/users", params={"search": stem, "is_active": "false"}, headers=admin)
    assert [user["username"] for user in active.json()["results"]] == [f"{stem}-off"]
    wildcard = await api.client.get("/api/v1/users", params={"search": "%"}, headers=admin)
    assert wildcard.json()["count"] == 0
    assert (await api.client.get("/api/v1/users", params={"role": "root"}, headers=admin)).status_code == 422


async def test_users_patch(api: Api) -> None:
    admin = await api.admin_headers(staff=True)
    user = await api.user(Role.viewer, tenant="acme", email="old@example.com")
    url = f"/api/v1/users/{user.id}"

    changed = await api.client.patch(
        url,
        json={"role": "operator", "is_staff": True, "tenant": None, "email": None, "password": "a-new-password"},
        headers=admin,
    )

    assert changed.status_code == 200, changed.text
    no_secrets(changed)
    body = changed.json()
    assert (body["role"], body["is_staff"], body["tenant"], body["email"]) == ("operator", True, None, None)
    login = await api.client.post(LOGIN, data={"username": user.username, "password": "a-new-password"})
    assert login.status_code == 200
    untouched = await api.client.patch(url, json={"is_active": True}, headers=admin)
    assert untouched.json()["role"] == "operator"
    for bad in ({"role": None}, {"password": None}, {"username": "renamed"}, {"password": "short"}):
        assert (await api.client.patch(url, json=bad, headers=admin)).status_code == 422, bad
    assert (await api.client.patch("/api/v1/users/999999999", json={}, headers=admin)).status_code == 404


async def test_admin_cannot_lock_themselves_out(api: Api) -> None:
    admin = await api.user(Role.admin)
    headers = api.bearer(admin)
    url = f"/api/v1/users/{admin.id}"

    for response in (
        await api.client.delete(url, headers=headers),
        await api.client.patch(url, json={"is_active": False}, headers=headers),
        await api.client.patch(url, json={"role": "viewer"}, headers=headers),
    ):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "self_lockout"
    assert (await api.client.get(ME, headers=headers)).json()["role"] == "admin"


# --- signup ---


async def test_signup_is_off_by_default(api: Api) -> None:
    response = await api.client.post("/api/v1/auth/signup", json={"username": api.unique("self"), "password": PASSWORD})

    assert response.status_code == 404


async def test_signup_when_enabled_creates_a_viewer(
    infra_settings: InfraSettings, make_client: ClientFactory, db_session: AsyncSession, usernames: list[str]
) -> None:
    api = await _api(
        infra_settings, make_client, db_session, usernames, signup_enabled=True, login_rate_limit=SIGNUP_TEST_LIMIT
    )
    name = api.unique("Self")

    created = await api.client.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})

    assert created.status_code == 201, created.text
    no_secrets(created)
    assert (created.json()["username"], created.json()["role"], created.json()["is_staff"]) == (
        name.lower(),
        "viewer",
        False,
    )
    login = await api.client.post(LOGIN, json={"username": name, "password": PASSWORD})
    assert login.status_code == 200
    again = await api.client.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})
    assert again.status_code == 409
    escalate = await api.client.post(
        "/api/v1/auth/signup", json={"username": api.unique("x"), "password": PASSWORD, "role": "admin"}
    )
    assert escalate.status_code == 422


# --- API keys ---


async def test_api_keys_create_list_get_revoke(api: Api) -> None:
    admin_user = await api.user(Role.admin)
    admin = api.bearer(admin_user)
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()

    created = await api.client.post(
        "/api/v1/api-keys",
        json={
            "name": "camera gateway",
            "scopes": ["rtls:ingest", "rtls:ingest"],
            "role": "operator",
            "expires_at": expires_at,
        },
        headers=admin,
    )

    assert created.status_code == 201, created.text
    body = created.json()
    plaintext = body["key"]
    assert plaintext.startswith(f"mk_{body['prefix']}_")
    assert (body["scopes"], body["role"], body["created_by"]) == (["rtls:ingest"], "operator", admin_user.id)
    stored = await api.session.get(ApiKey, body["id"])
    assert stored is not None and stored.key_hash == hash_api_key(plaintext)

    listed = await api.client.get("/api/v1/api-keys", params={"page_size": 200}, headers=admin)
    no_secrets(listed)
    assert plaintext not in listed.text
    ours = [key for key in listed.json()["results"] if key["id"] == body["id"]]
    assert ours and "key" not in ours[0]
    single = await api.client.get(f"/api/v1/api-keys/{body['id']}", headers=admin)
    assert single.status_code == 200 and "key" not in single.json()
    assert plaintext not in single.text

    assert (await api.client.get(ME, headers={"X-API-Key": plaintext})).status_code == 200
    assert (await api.client.delete(f"/api/v1/api-keys/{body['id']}", headers=admin)).status_code == 204
    assert (await api.client.delete(f"/api/v1/api-keys/{body['id']}", headers=admin)).status_code == 204
    assert (await api.client.get(ME, headers={"X-API-Key": plaintext})).status_code == 401

    active_ids = [key["id"] for key in (await api.client.get("/api/v1/api-keys", headers=admin)).json()["results"]]
    assert body["id"] not in active_ids
    everything = await api.client.get(
        "/api/v1/api-keys", params={"include_revoked": "true", "page_size": 200}, headers=admin
    )
    revoked = [key for key in everything.json()["results"] if key["id"] == body["id"]]
    assert revoked and revoked[0]["revoked_at"] is not None
    assert (await api.client.delete("/api/v1/api-keys/999999999", headers=admin)).status_code == 404


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "k", "scopes": []}, "body.scopes"),
        ({"name": "k", "scopes": ["Bad Scope"]}, "body.scopes.0"),
        ({"name": "", "scopes": ["*"]}, "body.name"),
        ({"name": "k", "scopes": ["*"], "role": "root"}, "body.role"),
        ({"name": "k", "scopes": ["*"], "expires_at": "2001-01-01T00:00:00Z"}, "body.expires_at"),
        ({"name": "k", "scopes": ["*"], "expires_at": "2099-01-01T00:00:00"}, "body.expires_at"),
        ({"name": "k", "scopes": ["*"], "expires_at": 4102444800}, "body.expires_at"),
        ({"name": "k", "scopes": ["*"], "expires_at": "4102444800"}, "body.expires_at"),
        ({"name": "k", "scopes": ["*"], "key_hash": "0" * 64}, "body.key_hash"),
        ({"name": "k", "scopes": ["*"], "prefix": "abcdefgh"}, "body.prefix"),
    ],
)
async def test_api_key_validation(api: Api, payload: dict[str, Any], field: str) -> None:
    response = await api.client.post("/api/v1/api-keys", json=payload, headers=await api.admin_headers())

    assert response.status_code == 422, response.text
    assert field in [detail["field"] for detail in response.json()["error"]["details"]]


async def test_api_key_routes_are_admin_only(api: Api) -> None:
    operator = api.bearer(await api.user(Role.operator))

    assert (await api.client.get("/api/v1/api-keys", headers=operator)).status_code == 403
    assert (
        await api.client.post("/api/v1/api-keys", json={"name": "k", "scopes": ["*"]}, headers=operator)
    ).status_code == 403
    assert (await api.client.get("/api/v1/api-keys")).status_code == 401


async def test_openapi_documents_both_login_bodies(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()

    content = schema["paths"][LOGIN]["post"]["requestBody"]["content"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(content)
    schemes = schema["components"]["securitySchemes"]
    assert {"bearer", "api_key"} <= set(schemes)
    assert "Authorization: Bearer mk_" in schemes["bearer"]["description"]
    assert "Authorization: Bearer mk_" in schemes["api_key"]["description"]


# --- revocation ---


async def test_changing_your_password_revokes_earlier_tokens(api: Api) -> None:
    user = await api.user()
    login = await api.client.post(LOGIN, data={"username": user.username, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await api.client.get(ME, headers=headers)).status_code == 200

    changed = await api.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "brand-new-pass"},
        headers=headers,
    )

    assert changed.status_code == 204, changed.text
    refused = await api.client.get(ME, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "invalid token: token has been revoked"
    fresh = await api.client.post(LOGIN, data={"username": user.username, "password": "brand-new-pass"})
    fresh_headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await api.client.get(ME, headers=fresh_headers)).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"password": "reset-by-admin"},
        {"role": "viewer"},
        {"is_staff": False},
        {"tenant": "beta"},
    ],
)
async def test_a_reset_or_demotion_revokes_earlier_tokens(api: Api, change: dict[str, Any]) -> None:
    staff = await api.admin_headers(staff=True)
    user = await api.user(Role.operator, staff=True, tenant="acme")
    headers = api.bearer(user)
    assert (await api.client.get(ME, headers=headers)).status_code == 200

    assert (await api.client.patch(f"/api/v1/users/{user.id}", json=change, headers=staff)).status_code == 200

    refused = await api.client.get(ME, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "invalid token: token has been revoked"


async def test_a_promotion_or_an_email_change_keeps_tokens(api: Api) -> None:
    admin = await api.admin_headers()
    user = await api.user(Role.viewer)
    headers = api.bearer(user)

    for change in ({"role": "operator"}, {"email": "new@example.com"}, {"is_active": True}):
        assert (await api.client.patch(f"/api/v1/users/{user.id}", json=change, headers=admin)).status_code == 200

    assert (await api.client.get(ME, headers=headers)).json()["role"] == "operator"


async def test_reactivating_a_user_does_not_revive_old_tokens(api: Api) -> None:
    admin = await api.admin_headers()
    user = await api.user()
    headers = api.bearer(user)

    assert (await api.client.delete(f"/api/v1/users/{user.id}", headers=admin)).status_code == 204
    assert (
        await api.client.patch(f"/api/v1/users/{user.id}", json={"is_active": True}, headers=admin)
    ).status_code == 200

    refused = await api.client.get(ME, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "invalid token: token has been revoked"
