"""HTTP endpoints of recordings: `/api/v1/recordings[...]`. Users and `recordings:read` keys read; admins delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from recording_storage.deps import AppSettings, StorageDep
from recording_storage.recordings import service
from recording_storage.recordings.deps import (
    ADMIN_SCOPE,
    READ_SCOPE,
    ContentKind,
    ContentReader,
    ContentSigner,
    RecordingDeleter,
    RecordingReader,
)
from recording_storage.recordings.schemas import ContentUrl, RecordingFilterQuery, RecordingIdPath, RecordingRead

router = APIRouter(prefix="/api/v1/recordings", tags=["recordings"])

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credentials, or credentials that are not valid"},
    403: {"description": f"an API key without the scope {READ_SCOPE!r}"},
}
ONE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_RESPONSES,
    404: {"description": "no such recording, or one outside the caller's tenant"},
}


@router.get("", responses=READ_RESPONSES)
async def list_recordings(
    session: Session, caller: RecordingReader, pagination: Pagination, filters: RecordingFilterQuery
) -> Page[RecordingRead]:
    """Recordings, newest start first, filtered by WATS user, machine, server (name or IP), connection type and
    start time (`start` inclusive, `end` exclusive)."""
    results, count = await service.list_recordings(
        session, caller, filters, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(results, count)


@router.get("/{recording_id}", responses=ONE_RESPONSES)
async def get_recording(recording_id: RecordingIdPath, session: Session, caller: RecordingReader) -> RecordingRead:
    """One recording: its connection, recorder settings, sizes and SHA-256."""
    return RecordingRead.of(await service.get_recording(session, caller, recording_id))


@router.post("/{recording_id}/content-url", responses=ONE_RESPONSES)
async def content_url(
    recording_id: RecordingIdPath,
    request: Request,
    response: Response,
    session: Session,
    caller: RecordingReader,
    signer: ContentSigner,
    settings: AppSettings,
    file: Annotated[ContentKind, Query(description="the video or the metadata file")] = "video",
) -> ContentUrl:
    """A short-lived URL to the file that needs no credentials (signed; for a `<video src>`, which cannot send
    a header). It opens only this recording's file, until `expires_at`."""
    response.headers["Cache-Control"] = "no-store"
    base_url = settings.public_base_url or str(request.base_url)
    return await service.issue_content_url(session, caller, recording_id, file, signer, base_url)


@router.get(
    "/{recording_id}/content",
    response_class=StreamingResponse,
    responses={
        **ONE_RESPONSES,
        200: {"content": {"video/mp4": {}, "application/json": {}}, "description": "the whole file"},
        206: {"description": "the range asked for (Content-Range)"},
        304: {"description": "If-None-Match matched the ETag"},
        403: {"description": "an API key without the scope, or a signed URL that expired or was altered"},
        416: {"description": "the range lies past the end of the file"},
    },
)
async def recording_content(
    recording_id: RecordingIdPath,
    session: Session,
    access: ContentReader,
    storage: StorageDep,
    file: Annotated[ContentKind, Query(description="the video or the metadata file")] = "video",
    download: Annotated[bool, Query(description="as an attachment rather than inline")] = False,
    range_header: Annotated[str | None, Header(alias="Range", include_in_schema=False)] = None,
    if_range: Annotated[str | None, Header(alias="If-Range", include_in_schema=False)] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", include_in_schema=False)] = None,
) -> Response:
    """The video (or metadata) bytes; one `Range: bytes=...` gives 206, so a player can seek. Credentials, or
    the `expires` and `signature` of a URL from `POST .../content-url`."""
    content = await service.open_content(
        session,
        access,
        recording_id,
        file,
        range_header=range_header,
        if_range=if_range,
        if_none_match=if_none_match,
        download=download,
        storage=storage,
    )
    if content.chunks is None:
        return Response(status_code=content.status_code, headers=content.headers)
    return StreamingResponse(
        content.chunks, status_code=content.status_code, headers=content.headers, media_type=content.media_type
    )


@router.delete(
    "/{recording_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **ONE_RESPONSES,
        403: {"description": f"not an admin, or an API key without the scope {ADMIN_SCOPE!r}"},
    },
)
async def delete_recording(
    recording_id: RecordingIdPath,
    session: Session,
    caller: RecordingDeleter,
    storage: StorageDep,
    background: BackgroundTasks,
) -> None:
    """Delete a recording (admins): it stops being listed at once; its files are removed after that."""
    for key in await service.delete_recording(session, caller, recording_id):
        background.add_task(storage.delete, key)
