"""Who is calling: the `Principal` and the FastAPI dependencies that authenticate and authorize requests.

Credentials: `Authorization: Bearer <jwt>`, or an API key as `X-API-Key: <key>`, `Authorization: Bearer <key>`
or `Authorization: Api-Key <key>`. A bearer value is an API key when it starts with the keys' marker (`mk_`) and
a token otherwise (a JWT starts with `eyJ`). Two credentials in one request must be the same API key: anything
else is refused rather than one of them picked silently.

Roles and scopes: users and API keys both carry a role (viewer < operator < admin; a key's role defaults to
viewer), so `require_role` treats them alike. API keys also carry scopes, which `require_scope` checks (a key
needs the scope or `*`); users have no scopes and pass scope checks, because roles govern them.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.apikeys import (
    InvalidApiKeyError,
    api_key_matches,
    api_key_prefix,
    looks_like_api_key,
    scopes_allow,
)
from mirante.auth.models import ApiKey, User
from mirante.auth.repository import ApiKeyRepository, UserRepository
from mirante.auth.roles import Role
from mirante.auth.tokens import InvalidTokenError, TokenCodec
from mirante.db import Session, Transactions, get_session
from mirante.web.errors import ForbiddenError, UnauthorizedError
from mirante.web.ratelimit import DEFAULT_CALLER_SCOPE, limit_caller, parse_rate

LOGIN_PATH = "/api/v1/auth/login"
API_KEY_HEADER = "X-API-Key"
CHALLENGE = 'Bearer realm="mirante", Api-Key realm="mirante"'

_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")

# Declared for the OpenAPI document (the "Authorize" button); the headers are parsed below.
bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=LOGIN_PATH,
    auto_error=False,
    scheme_name="bearer",
    description=(
        f"`Authorization: Bearer <token>` with the access token of `POST {LOGIN_PATH}`. The same header also "
        "carries an API key (`Authorization: Bearer mk_…`), for clients that only know bearer tokens."
    ),
)
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="api_key",
    description=(
        f"`{API_KEY_HEADER}: mk_…`, an API key made with `mirante apikey create` or `POST /api/v1/api-keys`. "
        "It may be sent as `Authorization: Bearer mk_…` instead (or `Authorization: Api-Key mk_…`), not both "
        "with different keys."
    ),
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user (from a token) or an API key."""

    kind: Literal["user", "api_key"]
    id: int
    name: str
    role: Role
    is_staff: bool = False
    tenant: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    def has_role(self, role: Role) -> bool:
        return self.role.includes(role)

    def has_scope(self, scope: str) -> bool:
        """Users pass (roles govern them); API keys need `scope` or `*`."""
        return self.is_user or scopes_allow(self.scopes, scope)

    @classmethod
    def for_user(cls, user: User) -> Principal:
        return cls(
            kind="user",
            id=user.id,
            name=user.username,
            role=Role(user.role),
            is_staff=user.is_staff,
            tenant=user.tenant,
        )

    @classmethod
    def for_api_key(cls, key: ApiKey) -> Principal:
        return cls(
            kind="api_key",
            id=key.id,
            name=key.name,
            role=Role(key.role),
            tenant=key.tenant,
            scopes=frozenset(key.scopes),
        )


async def principal_for_token(session: AsyncSession, codec: TokenCodec, token: str) -> Principal:
    """Verify `token` and load its user (one primary-key read): deactivation, role changes and revocation
    (a token version older than the user's) act at once."""
    claims = codec.decode(token)
    user = await UserRepository(session).get(claims.user_id, refresh=True)
    if user is None:
        raise InvalidTokenError("user no longer exists")
    if not user.is_active:
        raise InvalidTokenError("user account is inactive")
    if claims.token_version != user.token_version:
        raise InvalidTokenError("token has been revoked")
    return Principal.for_user(user)


async def principal_for_api_key(session: AsyncSession, key: str) -> Principal:
    """Find `key` by prefix, compare its hash in constant time, refuse it when revoked or expired."""
    repository = ApiKeyRepository(session)
    stored = await repository.get_by_prefix(api_key_prefix(key))
    if stored is None or not api_key_matches(key, stored.key_hash):
        raise InvalidApiKeyError()
    now = datetime.now(UTC)
    if stored.revoked_at is not None:
        raise InvalidApiKeyError("API key has been revoked")
    if stored.expires_at is not None and stored.expires_at <= now:
        raise InvalidApiKeyError("API key has expired")
    await repository.touch_last_used(stored, now)
    return Principal.for_api_key(stored)


def _credentials(request: Request) -> tuple[str | None, str | None]:
    """`(bearer token, API key)` from the request headers, at most one of them set."""
    header_key = request.headers.get(API_KEY_HEADER)
    authorization = request.headers.get("authorization")
    if authorization is None:
        return None, header_key
    scheme, _, value = authorization.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "api-key" or (scheme == "bearer" and looks_like_api_key(value)):
        if header_key is not None and not hmac.compare_digest(header_key.encode(), value.encode()):
            raise UnauthorizedError(
                f"Authorization and {API_KEY_HEADER} carry different API keys: send one key",
                headers=_challenge(),
            )
        return None, value
    if scheme != "bearer":
        raise UnauthorizedError(
            "unsupported Authorization scheme: use 'Bearer <token>', 'Bearer <API key>' or 'Api-Key <key>'",
            headers=_challenge(),
        )
    if header_key is not None:
        raise UnauthorizedError("send either a bearer token or an API key, not both", headers=_challenge())
    if not _JWT_SHAPE.fullmatch(value):
        raise InvalidTokenError(
            f"malformed token: a bearer value is an access token from {LOGIN_PATH} or an API key (mk_...)"
        )
    return value, None


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": CHALLENGE}


def token_codec(request: Request) -> TokenCodec:
    """The app's `TokenCodec` (set by `build_service_app`)."""
    codec: TokenCodec | None = getattr(request.app.state, "token_codec", None)
    if codec is None:
        raise RuntimeError("app.state.token_codec is not set; build the app with mirante.app.build_service_app")
    return codec


async def get_principal(
    request: Request,
    session: Session,
    _bearer: Annotated[str | None, Depends(bearer_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """The authenticated caller; 401 with `WWW-Authenticate` when credentials are missing or not valid."""
    return await authenticate(request, session)


async def get_principal_detached(
    request: Request,
    transactions: Transactions,
    _bearer: Annotated[str | None, Depends(bearer_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """`get_principal` in a transaction of its own, committed before the endpoint runs: for an endpoint that
    streams a long body and must hold no connection meanwhile (it opens short transactions when it needs them)."""
    async with transactions() as session:
        return await authenticate(request, session)


async def authenticate(request: Request, session: AsyncSession) -> Principal:
    """The caller of `request`, looked up in `session`; 401 when credentials are missing or not valid."""
    token, key = _credentials(request)
    if token is not None:
        principal = await principal_for_token(session, token_codec(request), token)
    elif key is not None:
        principal = await principal_for_api_key(session, key)
    else:
        raise UnauthorizedError(
            "authentication required: send 'Authorization: Bearer <token or API key>' or 'X-API-Key: <key>'",
            headers=_challenge(),
        )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
DetachedPrincipal = Annotated[Principal, Depends(get_principal_detached)]


async def streaming_session(
    session: Annotated[AsyncSession, Depends(get_session, scope="request")],
    principal: CurrentPrincipal,
) -> AsyncSession:
    """A session that stays open until a streamed body has been sent, for a caller who is signed in.

    It is the ordinary `get_session` dependency with request scope, so tests that override `get_session`
    stream what they wrote. It is resolved before the principal so that, when both share one session (as under
    that override), the principal's shorter-lived savepoint nests inside this one and ends first. Role checks
    go next to it (`AdminPrincipal` ...): FastAPI authenticates once per request.
    """
    return session


StreamingSession = Annotated[AsyncSession, Depends(streaming_session)]

PrincipalDependency = Callable[[Principal], Coroutine[Any, Any, Principal]]


def check_role(principal: Principal, role: Role) -> None:
    """403 unless `principal` has `role` or a higher one."""
    if not principal.has_role(role):
        raise ForbiddenError(f"this action needs the {role.value} role (you have {principal.role.value})")


def check_scope(principal: Principal, scope: str) -> None:
    """403 for an API key holding neither `scope` nor `*` (users pass: roles govern them)."""
    if not principal.has_scope(scope):
        raise ForbiddenError(f"this API key lacks the scope {scope!r}")


def require_role(role: Role) -> PrincipalDependency:
    """A dependency admitting principals with `role` or a higher one (403 otherwise)."""

    async def role_checked(principal: CurrentPrincipal) -> Principal:
        check_role(principal, role)
        return principal

    return role_checked


def require_staff() -> PrincipalDependency:
    """A dependency admitting staff users only (403 otherwise)."""

    async def check_staff(principal: CurrentPrincipal) -> Principal:
        if not principal.is_staff:
            raise ForbiddenError("this action is for staff users")
        return principal

    return check_staff


def require_scope(scope: str) -> PrincipalDependency:
    """A dependency admitting users and API keys holding `scope` or `*` (403 otherwise)."""

    async def scope_checked(principal: CurrentPrincipal) -> Principal:
        check_scope(principal, scope)
        return principal

    return scope_checked


RateSetting = str | Callable[[Request], str | None] | None
"""A rate ("1000/hour"), None for no limit, or a function reading it from the request's app (its settings)."""


class _SameAsUsers:
    pass


SAME_AS_USERS = _SameAsUsers()


def rate_limited(
    user_rate: RateSetting,
    api_key_rate: RateSetting | _SameAsUsers = SAME_AS_USERS,
    *,
    scope: str = DEFAULT_CALLER_SCOPE,
) -> Callable[[Request, Principal], Coroutine[Any, Any, Principal]]:
    """A dependency counting each request against its principal's quota: `user_rate` for a user, `api_key_rate`
    (by default the same) for an API key, each user and key its own bucket across every route of `scope`; 429
    with `Retry-After` beyond it, and None for a rate means no limit.

    Depend on it instead of `CurrentPrincipal` (it returns the principal) or next to it (FastAPI authenticates
    once per request). A rate given as a function is read on every request, so it can come from settings kept
    on `app.state`; a rate given as text is checked here, when the route is declared.
    """
    key_rate = user_rate if isinstance(api_key_rate, _SameAsUsers) else api_key_rate
    for rate in (user_rate, key_rate):
        if isinstance(rate, str):
            parse_rate(rate)

    async def count_request(request: Request, principal: CurrentPrincipal) -> Principal:
        setting = user_rate if principal.is_user else key_rate
        rate = setting(request) if callable(setting) else setting
        await limit_caller(request, rate, principal.kind, principal.id, scope=scope)
        return principal

    return count_request


AdminPrincipal = Annotated[Principal, Depends(require_role(Role.admin))]
OperatorPrincipal = Annotated[Principal, Depends(require_role(Role.operator))]
