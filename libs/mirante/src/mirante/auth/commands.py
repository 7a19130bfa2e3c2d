"""Identity operations for the command line (`mirante user ...`, `mirante apikey create`).

The caller owns the session and its transaction; these functions validate with the same rules as the API
and raise typed errors (`InvalidIdentityInputError`, `DuplicateUsernameError`, `UnknownUsernameError`) the CLI
can print. They act with database access, so no role is checked: they are how an admin who locked themself out
gets back in. Changes go through the service layer, which revokes tokens exactly as the API does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth import service
from mirante.auth.errors import InvalidIdentityInputError, UnknownUsernameError
from mirante.auth.models import ApiKey, User
from mirante.auth.repository import UserRepository
from mirante.auth.roles import Role
from mirante.auth.schemas import ApiKeyCreate, NewPassword, UserCreate, UserUpdate

Model = TypeVar("Model", bound=BaseModel)


class _NewPassword(BaseModel):
    password: NewPassword


def _validated(model: type[Model], what: str, fields: dict[str, Any]) -> Model:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
            for error in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in details)
        raise InvalidIdentityInputError(f"invalid {what}: {summary}", details=details) from None


async def create_user(
    session: AsyncSession,
    username: str,
    password: str,
    role: Role | str = Role.viewer,
    staff: bool = False,
    tenant: str | None = None,
    email: str | None = None,
) -> User:
    """Create an active user; `DuplicateUsernameError` when the username is taken."""
    data = _validated(
        UserCreate,
        "user",
        {
            "username": username,
            "password": password,
            "role": role,
            "is_staff": staff,
            "tenant": tenant,
            "email": email,
        },
    )
    return await service.create_user(session, data)


async def find_user(session: AsyncSession, username: str) -> User:
    """The user named `username` (any case); `UnknownUsernameError` otherwise."""
    user = await UserRepository(session).get_by_username(username)
    if user is None:
        raise UnknownUsernameError(username)
    return user


async def list_users(session: AsyncSession, tenant: str | None = None) -> Sequence[User]:
    """Every user by username, or only those of `tenant`."""
    return await UserRepository(session).list_all(tenant=tenant)


async def change_user(session: AsyncSession, username: str, **fields: Any) -> tuple[User, bool]:
    """Apply `fields` (those of `UserUpdate`: role, is_staff, is_active, password) to the user `username`.

    Returns the user and whether its tokens were revoked (a new password, deactivation, a lower role or losing
    staff revoke them, as through the API). The fields are validated before the user is looked up.
    """
    if "password" in fields:
        # Alone first: `UserUpdate` wraps it in a nullable type whose errors also speak of null.
        _validated(_NewPassword, "user", {"password": fields["password"]})
    changes = _validated(UserUpdate, "user", fields)
    user = await find_user(session, username)
    version = user.token_version
    await service.apply_user_changes(session, user, changes)
    return user, user.token_version != version


async def create_api_key(
    session: AsyncSession,
    name: str,
    scopes: Sequence[str],
    role: Role | str = Role.viewer,
    expires_at: datetime | None = None,
    tenant: str | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key; returns it with its plaintext, which is shown once and never stored."""
    data = _validated(
        ApiKeyCreate,
        "API key",
        {"name": name, "scopes": list(scopes), "role": role, "expires_at": expires_at, "tenant": tenant},
    )
    return await service.create_api_key(session, data, created_by=None)
