"""Errors of the identity feature: each is an `ApiError`, rendered by the web layer and printed by the CLI."""

from __future__ import annotations

from typing import Any

from mirante.web.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    ValidationFailedError,
)

INVALID_CREDENTIALS = "invalid username or password"


class InvalidCredentialsError(UnauthorizedError):
    """Login failed. One message for unknown user, wrong password and inactive account."""

    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__(INVALID_CREDENTIALS)


class DuplicateUsernameError(ConflictError):
    code = "duplicate_username"

    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is already taken")


class UserNotFoundError(NotFoundError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} not found")


class UnknownUsernameError(NotFoundError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user named {username!r} (`mirante user list` shows them)")


class ApiKeyNotFoundError(NotFoundError):
    def __init__(self, key_id: int) -> None:
        super().__init__(f"API key {key_id} not found")


class SelfLockoutError(ConflictError):
    """An admin tried to deactivate or demote their own account."""

    code = "self_lockout"


class InvalidIdentityInputError(ValidationFailedError):
    """Input to a command or service failed validation; `details` lists the fields."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message, details=details)


class WrongCurrentPasswordError(BadRequestError):
    code = "wrong_current_password"

    def __init__(self) -> None:
        super().__init__("the current password is not correct")


class NotAUserError(ForbiddenError):
    def __init__(self) -> None:
        super().__init__("only users have passwords; API keys cannot change one")
