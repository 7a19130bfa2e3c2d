"""Identity use cases: login, signup, user administration, API keys. Called by the router and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.apikeys import generate_api_key
from mirante.auth.errors import (
    ApiKeyNotFoundError,
    DuplicateUsernameError,
    InvalidCredentialsError,
    NotAUserError,
    SelfLockoutError,
    UserNotFoundError,
    WrongCurrentPasswordError,
)
from mirante.auth.models import ApiKey, User
from mirante.auth.passwords import (
    burn_password_time_async,
    hash_password_async,
    needs_rehash,
    verify_password_async,
)
from mirante.auth.principal import Principal
from mirante.auth.repository import ApiKeyRepository, UserRepository
from mirante.auth.roles import Role
from mirante.auth.schemas import ApiKeyCreate, SignupRequest, UserCreate, UserFilters, UserUpdate
from mirante.auth.tokens import IssuedToken, TokenCodec, TokenSigningUnavailableError

PREFIX_ATTEMPTS = 5


async def authenticate(session: AsyncSession, username: str, password: str) -> User:
    """The active user with these credentials; `InvalidCredentialsError` otherwise.

    Unknown users cost one password verification too, so timing does not reveal which usernames exist.
    """
    user = await UserRepository(session).get_by_username(username)
    if user is None:
        await burn_password_time_async(password)
        raise InvalidCredentialsError()
    if not await verify_password_async(password, user.password_hash) or not user.is_active:
        raise InvalidCredentialsError()
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password_async(password)
    return user


async def login(session: AsyncSession, codec: TokenCodec, username: str, password: str) -> IssuedToken:
    """Check the credentials, record the login and issue an access token."""
    if not codec.can_issue:
        raise TokenSigningUnavailableError("this service holds only the public key: log in on the issuing service")
    user = await authenticate(session, username, password)
    user.last_login_at = datetime.now(UTC)
    await session.flush()
    return codec.issue(user.id, username=user.username, role=user.role, staff=user.is_staff, tenant=user.tenant)


async def change_password(session: AsyncSession, principal: Principal, current: str, new: str) -> None:
    """Let a user replace their own password after proving they know the current one."""
    if not principal.is_user:
        raise NotAUserError()
    user = await get_user(session, principal.id)
    if not await verify_password_async(current, user.password_hash):
        raise WrongCurrentPasswordError()
    user.password_hash = await hash_password_async(new)
    await session.flush()


async def create_user(session: AsyncSession, data: UserCreate) -> User:
    """A new user; `DuplicateUsernameError` when the (case-insensitive) username is taken."""
    repository = UserRepository(session)
    if await repository.get_by_username(data.username) is not None:
        raise DuplicateUsernameError(data.username)
    user = User(
        username=data.username,
        email=data.email,
        password_hash=await hash_password_async(data.password),
        role=data.role.value,
        is_staff=data.is_staff,
        tenant=data.tenant,
        is_active=data.is_active,
    )
    if not await repository.add(user):
        raise DuplicateUsernameError(data.username)
    return user


async def signup(session: AsyncSession, data: SignupRequest) -> User:
    """Self-service registration: always an active viewer without tenant or staff rights."""
    return await create_user(session, UserCreate(username=data.username, password=data.password, email=data.email))


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await UserRepository(session).get(user_id)
    if user is None:
        raise UserNotFoundError(user_id)
    return user


async def list_users(
    session: AsyncSession, filters: UserFilters, *, offset: int, limit: int
) -> tuple[Sequence[User], int]:
    return await UserRepository(session).list_page(filters, offset=offset, limit=limit)


def _guard_self_lockout(user: User, actor: Principal, *, deactivating: bool, new_role: Role | None) -> None:
    if not actor.is_user or actor.id != user.id:
        return
    if deactivating:
        raise SelfLockoutError("you cannot deactivate your own account")
    if new_role is not None and new_role is not Role.admin:
        raise SelfLockoutError("you cannot remove your own admin role")


async def update_user(session: AsyncSession, user_id: int, changes: UserUpdate, actor: Principal) -> User:
    """Apply the fields present in `changes`, one by one (no mass assignment)."""
    user = await get_user(session, user_id)
    given = changes.model_fields_set
    _guard_self_lockout(user, actor, deactivating=changes.is_active is False, new_role=changes.role)
    if changes.role is not None:
        user.role = changes.role.value
    if changes.is_staff is not None:
        user.is_staff = changes.is_staff
    if changes.is_active is not None:
        user.is_active = changes.is_active
    if "tenant" in given:
        user.tenant = changes.tenant
    if "email" in given:
        user.email = changes.email
    if changes.password is not None:
        user.password_hash = await hash_password_async(changes.password)
    await session.flush()
    return user


async def deactivate_user(session: AsyncSession, user_id: int, actor: Principal) -> None:
    """Deactivate (never delete) a user: their tokens stop working on the next request."""
    user = await get_user(session, user_id)
    _guard_self_lockout(user, actor, deactivating=True, new_role=None)
    if user.is_active:
        user.is_active = False
        await session.flush()


async def create_api_key(session: AsyncSession, data: ApiKeyCreate, created_by: int | None) -> tuple[ApiKey, str]:
    """A new key and its plaintext (shown once; only the hash is kept)."""
    repository = ApiKeyRepository(session)
    for _ in range(PREFIX_ATTEMPTS):
        generated = generate_api_key()
        if not await repository.prefix_exists(generated.prefix):
            break
    else:
        raise RuntimeError("could not find a free API key prefix")
    key = ApiKey(
        prefix=generated.prefix,
        key_hash=generated.key_hash,
        name=data.name,
        role=data.role.value,
        scopes=list(data.scopes),
        tenant=data.tenant,
        created_by=created_by,
        expires_at=data.expires_at,
    )
    await repository.add(key)
    return key, generated.plaintext


async def list_api_keys(
    session: AsyncSession, *, include_revoked: bool, offset: int, limit: int
) -> tuple[Sequence[ApiKey], int]:
    return await ApiKeyRepository(session).list_page(include_revoked=include_revoked, offset=offset, limit=limit)


async def get_api_key(session: AsyncSession, key_id: int) -> ApiKey:
    key = await ApiKeyRepository(session).get(key_id)
    if key is None:
        raise ApiKeyNotFoundError(key_id)
    return key


async def revoke_api_key(session: AsyncSession, key_id: int) -> ApiKey:
    """Revoke a key (idempotent): it stops working on the next request."""
    key = await get_api_key(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return key
