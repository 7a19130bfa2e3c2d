"""The identity API every service mounts: login, signup, the caller's identity, users and API keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from mirante.auth import service
from mirante.auth.errors import NotAUserError
from mirante.auth.policy import IDENTITY_ADMIN_SCOPE
from mirante.auth.principal import AdminPrincipal, CurrentPrincipal, Principal, token_codec
from mirante.auth.roles import Role
from mirante.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    PasswordChange,
    PrincipalOut,
    SignupRequest,
    TokenResponse,
    UserCreate,
    UserFilters,
    UserOut,
    UserUpdate,
)
from mirante.db import Session
from mirante.settings import CoreSettings
from mirante.types import Text
from mirante.web.errors import ForbiddenError, NotFoundError, UnsupportedMediaTypeError
from mirante.web.pagination import Page, Pagination
from mirante.web.ratelimit import client_ip, rate_limit

router = APIRouter(prefix="/api/v1", tags=["identity"])

MAX_ID = 2**63 - 1
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID)]

_login_schema = LoginRequest.model_json_schema()
LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _login_schema},
            "application/json": {"schema": _login_schema},
        },
    }
}
_DEFAULT_CORE = CoreSettings.model_construct()
RATE_LIMITED: dict[int | str, dict[str, Any]] = {429: {"description": "too many attempts: retry after `Retry-After`"}}
USERNAME_TAKEN: dict[int | str, dict[str, Any]] = {409: {"description": "the username is taken"}}
SELF_LOCKOUT: dict[int | str, dict[str, Any]] = {
    409: {"description": "an admin cannot deactivate themselves or drop their own admin role"}
}


async def _identity_admin(principal: AdminPrincipal) -> Principal:
    if not principal.has_scope(IDENTITY_ADMIN_SCOPE):
        raise ForbiddenError(f"this API key lacks the scope {IDENTITY_ADMIN_SCOPE!r}")
    return principal


IdentityAdmin = Annotated[Principal, Depends(_identity_admin)]
"""An admin user, or an admin API key holding `identity:admin` (or `*`)."""


def _core_settings(request: Request) -> CoreSettings:
    core: CoreSettings | None = getattr(request.app.state, "core_settings", None)
    return core or _DEFAULT_CORE


def _login_key(request: Request) -> str:
    return f"{client_ip(request)}|{request.state.login_username}"


@lru_cache(maxsize=16)
def _limiter(rate: str, per_username: bool) -> Callable[[Request], Awaitable[None]]:
    return rate_limit(rate, key=_login_key if per_username else client_ip)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _login_fields(request: Request) -> dict[str, Any]:
    media_type = _media_type(request)
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            body = await request.json()
        except ValueError:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "body is not valid JSON", "input": None}]
            ) from None
        if not isinstance(body, dict):
            raise RequestValidationError(
                [{"type": "dict_type", "loc": ("body",), "msg": "body must be a JSON object", "input": None}]
            )
        return body
    if media_type in FORM_TYPES:
        async with request.form(max_files=0) as form:
            return {name: value for name, value in form.items() if isinstance(value, str)}
    raise UnsupportedMediaTypeError(
        "send the credentials as application/x-www-form-urlencoded (OAuth2 password form) or application/json"
    )


async def _login_request(request: Request) -> LoginRequest:
    fields = await _login_fields(request)
    try:
        return LoginRequest.model_validate(fields)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


@router.post(
    "/auth/login",
    response_model=TokenResponse,
    openapi_extra=LOGIN_BODY,
    responses={
        401: {"description": "bad credentials"},
        415: {"description": "neither a form nor JSON"},
        422: {"description": "a field is missing or invalid"},
        **RATE_LIMITED,
        503: {"description": "this service cannot sign tokens: log in on the issuing service"},
    },
)
async def login(request: Request, session: Session) -> TokenResponse:
    """Exchange a username and password for a bearer token.

    Accepts the OAuth2 password form (`application/x-www-form-urlencoded`) or JSON with the same fields.
    Limited per client address and username (`MIRANTE_LOGIN_RATE_LIMIT`); a refusal is 429 with `Retry-After`.
    """
    credentials = await _login_request(request)
    request.state.login_username = credentials.username.lower()
    await _limiter(_core_settings(request).login_rate_limit, True)(request)
    issued = await service.login(session, token_codec(request), credentials.username, credentials.password)
    return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)


async def _signup_allowed(request: Request) -> None:
    core = _core_settings(request)
    if not core.signup_enabled:
        raise NotFoundError("signup is not enabled on this deployment")
    await _limiter(core.login_rate_limit, False)(request)


@router.post(
    "/auth/signup",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(_signup_allowed)],
    responses={404: {"description": "signup is not enabled"}, **USERNAME_TAKEN, **RATE_LIMITED},
)
async def signup(data: SignupRequest, session: Session) -> UserOut:
    """Create an account for yourself (a viewer). Answers 404 unless `MIRANTE_SIGNUP_ENABLED=true`."""
    user = await service.signup(session, data)
    return UserOut.model_validate(user)


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={400: {"description": "the current password is wrong"}, **RATE_LIMITED},
)
async def change_password(
    data: PasswordChange, principal: CurrentPrincipal, request: Request, session: Session
) -> Response:
    """Change your own password (users only); needs the current one, limited like login.

    Every token issued before, this request's included, stops working: sign in again with the new password.
    """
    if not principal.is_user:
        raise NotAUserError()
    request.state.login_username = principal.name
    await _limiter(_core_settings(request).login_rate_limit, True)(request)
    await service.change_password(session, principal, data.current_password, data.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", response_model=PrincipalOut)
async def me(principal: CurrentPrincipal) -> PrincipalOut:
    """Who the request is authenticated as (a user by token, or an API key)."""
    return PrincipalOut(
        kind=principal.kind,
        id=principal.id,
        name=principal.name,
        role=principal.role,
        is_staff=principal.is_staff,
        tenant=principal.tenant,
        scopes=sorted(principal.scopes),
    )


@router.get("/users", response_model=Page[UserOut])
async def list_users(
    admin: IdentityAdmin,
    session: Session,
    pagination: Pagination,
    role: Role | None = None,
    is_active: bool | None = None,
    search: Annotated[Text | None, Query(max_length=150, description="part of the username")] = None,
) -> Page[UserOut]:
    """Users, by id, filtered by role, active flag and a username fragment (admin only; a tenant-bound admin
    sees its own tenant's users)."""
    filters = UserFilters(role=role, is_active=is_active, search=search)
    users, count = await service.list_users(session, filters, admin, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([UserOut.model_validate(user) for user in users], count)


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses=USERNAME_TAKEN)
async def create_user(data: UserCreate, admin: IdentityAdmin, session: Session) -> UserOut:
    """Create a user (admin only); 409 when the username is taken (usernames are case-insensitive).

    Only staff may create staff; a tenant-bound admin creates users of its own tenant (the default there).
    """
    return UserOut.model_validate(await service.create_user(session, data, admin))


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: UserId, admin: IdentityAdmin, session: Session) -> UserOut:
    """One user (admin only); 404 for users outside a tenant-bound admin's tenant."""
    return UserOut.model_validate(await service.get_user(session, user_id, admin))


@router.patch("/users/{user_id}", response_model=UserOut, responses=SELF_LOCKOUT)
async def update_user(user_id: UserId, changes: UserUpdate, admin: IdentityAdmin, session: Session) -> UserOut:
    """Change role, staff flag, tenant, active flag, password or email (admin only).

    Only staff may grant staff or change a staff account. A new password, deactivation, a lower role, losing
    staff or a new tenant revoke the user's existing tokens.
    """
    return UserOut.model_validate(await service.update_user(session, user_id, changes, admin))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=SELF_LOCKOUT)
async def deactivate_user(user_id: UserId, admin: IdentityAdmin, session: Session) -> Response:
    """Deactivate a user (admin only); their tokens are revoked. An admin cannot deactivate themselves."""
    await service.deactivate_user(session, user_id, admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_api_key(data: ApiKeyCreate, admin: IdentityAdmin, session: Session) -> ApiKeyCreated:
    """Create an API key (admin only). The key is in this response only: store it now.

    The key never exceeds its creator: no role above it, no scope an API-key creator lacks, and a tenant-bound
    admin's keys belong to its tenant.
    """
    key, plaintext = await service.create_api_key(
        session, data, created_by=admin.id if admin.is_user else None, actor=admin
    )
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=plaintext)


@router.get("/api-keys", response_model=Page[ApiKeyOut])
async def list_api_keys(
    admin: IdentityAdmin, session: Session, pagination: Pagination, include_revoked: bool = False
) -> Page[ApiKeyOut]:
    """API keys without their secrets (admin only); revoked ones only with `include_revoked=true`."""
    keys, count = await service.list_api_keys(
        session, admin, include_revoked=include_revoked, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build([ApiKeyOut.model_validate(key) for key in keys], count)


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut)
async def get_api_key(key_id: KeyId, admin: IdentityAdmin, session: Session) -> ApiKeyOut:
    """One API key without its secret (admin only)."""
    return ApiKeyOut.model_validate(await service.get_api_key(session, key_id, admin))


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(key_id: KeyId, admin: IdentityAdmin, session: Session) -> Response:
    """Revoke an API key (admin only); it stops working at once. Revoking twice is harmless."""
    await service.revoke_api_key(session, key_id, admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
