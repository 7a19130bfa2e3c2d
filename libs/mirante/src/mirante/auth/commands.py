"""Identity operations for the command line (`mirante user create`, `mirante apikey create`).

The caller owns the session and its transaction; these functions validate with the same rules as the API
and raise typed errors (`InvalidIdentityInputError`, `DuplicateUsernameError`) the CLI can print.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth import service
from mirante.auth.errors import InvalidIdentityInputError
from mirante.auth.models import ApiKey, User
from mirante.auth.roles import Role
from mirante.auth.schemas import ApiKeyCreate, UserCreate

Model = TypeVar("Model", bound=BaseModel)


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
