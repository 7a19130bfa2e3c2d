"""Who may read and who may delete recordings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from fastapi import Depends, Path, Query, Request

from mirante.auth.principal import CurrentPrincipal, Principal, api_key_scheme, bearer_scheme, get_principal
from mirante.auth.roles import Role
from mirante.db import Session
from mirante.web.errors import ForbiddenError
from recording_storage.recordings.signing import SIGNATURE_PATTERN, ContentUrlSigner

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


async def operator(principal: CurrentPrincipal) -> Principal:
    """Operators and admins (upload statistics); an API key also needs `recordings:read` (or `*`)."""
    if not principal.has_role(Role.operator):
        raise ForbiddenError(f"upload statistics need the operator role (you have {principal.role.value})")
    if not principal.has_scope(READ_SCOPE):
        raise ForbiddenError(f"this API key lacks the scope {READ_SCOPE!r}")
    return principal


ContentKind = Literal["video", "metadata"]


@dataclass(frozen=True)
class SignedGrant:
    """A content request proven by a signed URL: it opens `kind` of `recording_id` and nothing else."""

    recording_id: uuid.UUID
    kind: str


ContentAccess = Principal | SignedGrant


async def get_content_signer(request: Request) -> ContentUrlSigner:
    signer: ContentUrlSigner = request.app.state.content_urls
    return signer


ContentSigner = Annotated[ContentUrlSigner, Depends(get_content_signer)]


async def content_access(
    request: Request,
    session: Session,
    signer: ContentSigner,
    recording_id: Annotated[uuid.UUID, Path(description="the recording's id (a UUID)")],
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
    file: Annotated[ContentKind, Query(description="the video or the metadata file")] = "video",
    expires: Annotated[
        int | None, Query(ge=0, le=2**40, description="with `signature`: a signed URL's expiry (unix seconds)")
    ] = None,
    signature: Annotated[
        str | None,
        Query(pattern=SIGNATURE_PATTERN.pattern, description="a signed URL's signature, instead of credentials"),
    ] = None,
) -> ContentAccess:
    """A signed URL's grant when the query carries a signature (credentials are then not read); otherwise a
    reader, as for the other read routes."""
    if signature is None and expires is None:
        return await reader(await get_principal(request, session, bearer, api_key))
    if signature is None or expires is None:
        raise ForbiddenError("a signed content URL needs both expires and signature", code="content_url_invalid")
    signer.check(recording_id, file, expires, signature)
    return SignedGrant(recording_id, file)


RecordingReader = Annotated[Principal, Depends(reader)]
RecordingOperator = Annotated[Principal, Depends(operator)]
ContentReader = Annotated[ContentAccess, Depends(content_access)]
RecordingDeleter = Annotated[Principal, Depends(deleter)]
