"""Who may upload: an API key holding the upload scope, or a user with the operator role or above."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from mirante.auth.principal import CurrentPrincipal, DetachedPrincipal, Principal
from mirante.auth.roles import Role
from mirante.web.errors import ForbiddenError

UPLOAD_SCOPE: Final = "recordings:upload"


async def upload_caller(principal: CurrentPrincipal) -> Principal:
    """API keys need the `recordings:upload` scope (or `*`), whatever their role; users need operator."""
    return _may_upload(principal)


async def streaming_upload_caller(principal: DetachedPrincipal) -> Principal:
    """`upload_caller` authenticated in a transaction of its own, for the endpoint that streams a file: no
    connection is held while the body arrives."""
    return _may_upload(principal)


def _may_upload(principal: Principal) -> Principal:
    if principal.is_user:
        if not principal.has_role(Role.operator):
            raise ForbiddenError(f"uploading recordings needs the operator role (you have {principal.role.value})")
    elif not principal.has_scope(UPLOAD_SCOPE):
        raise ForbiddenError(f"this API key lacks the scope {UPLOAD_SCOPE!r}")
    return principal


UploadCaller = Annotated[Principal, Depends(upload_caller)]
StreamingUploadCaller = Annotated[Principal, Depends(streaming_upload_caller)]
