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
from mirante.auth.policy import (
    can_see,
    check_role_grant,
    check_scope_grant,
    check_staff_account,
    check_staff_grant,
    tenant_for_new,
    tenant_reach,
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
    return issue_token(codec, user)


def issue_token(codec: TokenCodec, user: User) -> IssuedToken:
    """An access token carrying what `user` is now: role, staff flag, tenant and token version."""
    return codec.issue(
        user.id,
        username=user.username,
        role=user.role,
        staff=user.is_staff,
        tenant=user.tenant,
        token_version=user.token_version,
    )


async def change_password(session: AsyncSession, principal: Principal, current: str, new: str) -> None:
    """Let a user replace their own password after proving they know the current one."""
    if not principal.is_user:
        raise NotAUserError()
    user = await get_user(session, principal.id)
    if not await verify_password_async(current, user.password_hash):
        raise WrongCurrentPasswordError()
    user.password_hash = await hash_password_async(new)
    revoke_tokens(user)
    await session.flush()


def revoke_tokens(user: User) -> None:
    """Make every token issued to `user` so far stop working (they carry the previous version)."""
    user.token_version += 1


async def create_user(session: AsyncSession, data: UserCreate, actor: Principal | None = None) -> User:
    """A new user; `DuplicateUsernameError` when the (case-insensitive) username is taken.

    With an `actor` (the API's caller) the grant is checked against it: no role above its own, staff only from
    staff, and a tenant-bound actor creates users of its own tenant. Without one (the CLI) nothing is checked.
    """
    tenant = data.tenant
    if actor is not None:
        check_role_grant(actor, data.role)
        check_staff_grant(actor, data.is_staff)
        tenant = tenant_for_new(actor, data.tenant, "tenant" in data.model_fields_set)
    repository = UserRepository(session)
    if await repository.get_by_username(data.username) is not None:
        raise DuplicateUsernameError(data.username)
    user = User(
        username=data.username,
        email=data.email,
        password_hash=await hash_password_async(data.password),
        role=data.role.value,
        is_staff=data.is_staff,
        tenant=tenant,
        is_active=data.is_active,
    )
    if not await repository.add(user):
        raise DuplicateUsernameError(data.username)
    return user


async def signup(session: AsyncSession, data: SignupRequest) -> User:
    """Self-service registration: always an active viewer without tenant or staff rights."""
    return await create_user(session, UserCreate(username=data.username, password=data.password, email=data.email))


async def get_user(session: AsyncSession, user_id: int, actor: Principal | None = None) -> User:
    """The user `user_id`; 404 when it does not exist or lies outside `actor`'s tenant."""
    user = await UserRepository(session).get(user_id)
    if user is None or (actor is not None and not can_see(actor, user.tenant)):
        raise UserNotFoundError(user_id)
    return user


async def list_users(
    session: AsyncSession, filters: UserFilters, actor: Principal, *, offset: int, limit: int
) -> tuple[Sequence[User], int]:
    """One page of the users within `actor`'s reach."""
    return await UserRepository(session).list_page(filters, tenant=tenant_reach(actor), offset=offset, limit=limit)


def _guard_self_lockout(user: User, actor: Principal, *, deactivating: bool, new_role: Role | None) -> None:
    if not actor.is_user or actor.id != user.id:
        return
    if deactivating:
        raise SelfLockoutError("you cannot deactivate your own account")
    if new_role is not None and new_role is not Role.admin:
        raise SelfLockoutError("you cannot remove your own admin role")


async def _managed_user(session: AsyncSession, user_id: int, actor: Principal) -> User:
    """The user `actor` is about to change: 404 outside its reach, 403 when it is staff or above the actor."""
    user = await get_user(session, user_id, actor)
    check_staff_account(actor, user.is_staff)
    check_role_grant(actor, Role(user.role))
    return user


def _loses_rights(user: User, changes: UserUpdate, tenant: str | None) -> bool:
    """True when `changes` take something away: a lower role, staff, the active flag or the tenant."""
    demoted = changes.role is not None and changes.role.rank < Role(user.role).rank
    unstaffed = changes.is_staff is False and user.is_staff
    deactivated = changes.is_active is False and user.is_active
    moved = "tenant" in changes.model_fields_set and tenant != user.tenant
    return demoted or unstaffed or deactivated or moved


async def update_user(session: AsyncSession, user_id: int, changes: UserUpdate, actor: Principal) -> User:
    """Apply the fields present in `changes`, one by one (no mass assignment), within `actor`'s rights.

    A new password, deactivation, a lower role, losing staff or changing tenant revoke the user's tokens.
    """
    user = await _managed_user(session, user_id, actor)
    _guard_self_lockout(user, actor, deactivating=changes.is_active is False, new_role=changes.role)
    if changes.role is not None:
        check_role_grant(actor, changes.role)
    check_staff_grant(actor, changes.is_staff is True)
    if "tenant" in changes.model_fields_set:
        changes = changes.model_copy(update={"tenant": tenant_for_new(actor, changes.tenant, True)})
    return await apply_user_changes(session, user, changes)


async def apply_user_changes(session: AsyncSession, user: User, changes: UserUpdate) -> User:
    """Write the fields present in `changes` to `user`, revoking its tokens when they take rights away or set a
    password. No rights are checked here: the API checks them first (`update_user`); the command line acts
    with database access, above any role."""
    given = changes.model_fields_set
    tenant = changes.tenant if "tenant" in given else user.tenant
    if _loses_rights(user, changes, tenant) or changes.password is not None:
        revoke_tokens(user)
    if changes.role is not None:
        user.role = changes.role.value
    if changes.is_staff is not None:
        user.is_staff = changes.is_staff
    if changes.is_active is not None:
        user.is_active = changes.is_active
    user.tenant = tenant
    if "email" in given:
        user.email = changes.email
    if changes.password is not None:
        user.password_hash = await hash_password_async(changes.password)
    await session.flush()
    return user


async def deactivate_user(session: AsyncSession, user_id: int, actor: Principal) -> None:
    """Deactivate (never delete) a user and revoke their tokens."""
    user = await _managed_user(session, user_id, actor)
    _guard_self_lockout(user, actor, deactivating=True, new_role=None)
    if user.is_active:
        await apply_user_changes(session, user, UserUpdate(is_active=False))


async def create_api_key(
    session: AsyncSession, data: ApiKeyCreate, created_by: int | None, actor: Principal | None = None
) -> tuple[ApiKey, str]:
    """A new key and its plaintext (shown once; only the hash is kept).

    With an `actor` the key never exceeds it: no role above its own, no scope an API-key actor lacks, and a
    tenant-bound actor's keys belong to its tenant.
    """
    tenant = data.tenant
    if actor is not None:
        check_role_grant(actor, data.role)
        check_scope_grant(actor, data.scopes)
        tenant = tenant_for_new(actor, data.tenant, "tenant" in data.model_fields_set)
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
        tenant=tenant,
        created_by=created_by,
        expires_at=data.expires_at,
    )
    await repository.add(key)
    return key, generated.plaintext


async def list_api_keys(
    session: AsyncSession, actor: Principal, *, include_revoked: bool, offset: int, limit: int
) -> tuple[Sequence[ApiKey], int]:
    """One page of the keys within `actor`'s reach."""
    return await ApiKeyRepository(session).list_page(
        include_revoked=include_revoked, tenant=tenant_reach(actor), offset=offset, limit=limit
    )


async def get_api_key(session: AsyncSession, key_id: int, actor: Principal) -> ApiKey:
    """The key `key_id`; 404 when it does not exist or lies outside `actor`'s tenant."""
    key = await ApiKeyRepository(session).get(key_id)
    if key is None or not can_see(actor, key.tenant):
        raise ApiKeyNotFoundError(key_id)
    return key


async def revoke_api_key(session: AsyncSession, key_id: int, actor: Principal) -> ApiKey:
    """Revoke a key (idempotent): it stops working on the next request."""
    key = await get_api_key(session, key_id, actor)
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return key
