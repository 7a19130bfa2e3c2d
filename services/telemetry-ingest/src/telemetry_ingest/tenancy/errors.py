"""Errors of the tenant registry, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError, ValidationFailedError


class TenantNotFoundError(NotFoundError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"no tenant {slug!r}", code="tenant_not_found")


class TenantAlreadyExistsError(ConflictError):
    def __init__(self, slug: str, message: str | None = None) -> None:
        super().__init__(message or f"tenant {slug!r} already exists", code="tenant_exists", details={"slug": slug})


class InvalidTenantError(ValidationFailedError):
    """Tenant fields the API models would also refuse (for callers that skip them, like the CLI)."""
