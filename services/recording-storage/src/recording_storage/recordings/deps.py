"""Who may read and who may delete recordings."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from mirante.auth.principal import CurrentPrincipal, Principal
from mirante.auth.roles import Role
from mirante.web.errors import ForbiddenError

READ_SCOPE: Final = "recordings:read"
ADMIN_SCOPE: Final = "recordings:admin"


async def reader(principal: CurrentPrincipal) -> Principal:
    """Any user; an API key with `recordings:read` (or `*`)."""
    if not principal.has_scope(READ_SCOPE):
        raise ForbiddenError(f"this API key lacks the scope {READ_SCOPE!r}")
    return principal


async def deleter(principal: CurrentPrincipal) -> Principal:
    """Admins; an API key also needs `recordings:admin` (or `*`)."""
    if not principal.has_role(Role.admin):
        raise ForbiddenError(f"deleting recordings needs the admin role (you have {principal.role.value})")
    if not principal.has_scope(ADMIN_SCOPE):
        raise ForbiddenError(f"this API key lacks the scope {ADMIN_SCOPE!r}")
    return principal


RecordingReader = Annotated[Principal, Depends(reader)]
RecordingDeleter = Annotated[Principal, Depends(deleter)]
