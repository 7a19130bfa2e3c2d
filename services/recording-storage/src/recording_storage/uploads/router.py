"""HTTP endpoints of upload sessions: `/api/v1/uploads/...`, the recorder's contract.

A session belongs to the principal that created it; every other caller gets 404 for it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status
from fastapi.responses import JSONResponse

from mirante.db import Session, Transactions
from mirante.web.errors import ApiError, error_response
from recording_storage.deps import AppSettings, StorageDep
from recording_storage.recordings.schemas import RecordingRead
from recording_storage.uploads import finishing, receiving, service
from recording_storage.uploads.body import body_chunks, is_multipart
from recording_storage.uploads.deps import UPLOAD_SCOPE, StreamingUploadCaller, UploadCaller
from recording_storage.uploads.errors import UPLOAD_OFFSET_HEADER
from recording_storage.uploads.receiving import MAX_OFFSET
from recording_storage.uploads.schemas import (
    CreateSession,
    FileKindQuery,
    FileReceipt,
    SessionCreated,
    SessionIdPath,
    SessionStatus,
)

UPLOADS_PATH: Final = "/api/v1/uploads"
CREATE_SESSION_PATH: Final = f"{UPLOADS_PATH}/create-session"

router = APIRouter(prefix=UPLOADS_PATH, tags=["uploads"])

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credentials, or credentials that are not valid"},
    403: {"description": f"an API key without the scope {UPLOAD_SCOPE!r}, or a user below operator"},
}
SESSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    404: {"description": "no such session, or not the caller's"},
    410: {"description": "the session expired and its data is gone: create a new session"},
}


def _error(error: ApiError, headers: dict[str, str]) -> JSONResponse:
    return error_response(
        error.status_code, error.code, error.message, error.details, headers={**headers, **(error.headers or {})}
    )


@router.post(
    "/create-session",
    status_code=status.HTTP_201_CREATED,
    responses={
        **AUTH_RESPONSES,
        409: {
            "description": "the recorder's session_id names a finished session (session_finished, with its "
            "recording_id) or an open one that declared another file (session_id_in_use), or its expired session "
            "is still held by a request (upload_in_progress, with Retry-After)"
        },
        413: {"description": "a declared size is above the configured maximum"},
    },
)
async def create_session(
    request: Request,
    body: CreateSession,
    session: Session,
    caller: UploadCaller,
    settings: AppSettings,
    storage: StorageDep,
) -> SessionCreated:
    """Open an upload session for a recording: where to send its video and metadata, and until when.

    The body is the recorder's (`session_id`, `connection_info`, `file_size`, `metadata` with `start_time` and
    `recorder_settings`), plus optionally `sha256` (of the video, checked at finalize) and `metadata_size`.
    Sent again with the same `session_id` while that session is open and declares the same file, it answers
    the same session (a retry is safe, also when calls race: they all answer the one session that opened); once
    that session expired, a new one.
    """
    return await service.create_session(session, caller, body, storage, settings, str(request.base_url))


@router.get("/{session_id}/status", response_model=SessionStatus, responses=SESSION_RESPONSES)
async def session_status(session_id: SessionIdPath, session: Session, caller: UploadCaller) -> Response:
    """How many bytes of the video and of the metadata the server holds: the offsets to continue at."""
    answer = await service.session_status(session, caller, session_id)
    return JSONResponse(answer.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.post(
    "/{session_id}/file",
    response_model=FileReceipt,
    responses={
        **SESSION_RESPONSES,
        400: {"description": "a malformed Upload-Offset or multipart body"},
        408: {"description": "the body stopped arriving; what arrived is kept (Upload-Offset says how much)"},
        409: {
            "description": "Upload-Offset is not the server's (offset_mismatch: the answer's Upload-Offset and "
            "details.offset are), another request is sending this file (upload_in_progress, with Retry-After), the "
            "file is complete, or the session is finished"
        },
        413: {"description": "the body goes past the file's declared size (nothing of it is kept)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    # Other fields are skipped; the file part is the body's bytes (a form without one is 400).
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        },
        "parameters": [
            {
                "name": UPLOAD_OFFSET_HEADER,
                "in": "header",
                "required": False,
                "description": "byte of the file this body starts at; it must be the server's offset (see status). "
                "Without it the file starts over at 0",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            }
        ],
    },
)
async def upload_file(
    request: Request,
    session_id: SessionIdPath,
    kind: Annotated[FileKindQuery, Query(description="which file of the session the body is")],
    transactions: Transactions,
    caller: StreamingUploadCaller,
    settings: AppSettings,
    storage: StorageDep,
) -> Response:
    """Append the body to the session's video or metadata, streaming it to storage as it arrives.

    Send the raw bytes (`application/octet-stream`) or a multipart form whose file part holds them. A body cut
    short keeps what arrived: ask the status, then continue with `Upload-Offset`.
    """
    content_length = request.headers.get("content-length")
    answer = await receiving.receive_file(
        transactions,
        caller,
        session_id,
        kind,
        body_chunks(request, settings.upload_idle_timeout_seconds),
        offset_header=request.headers.get(UPLOAD_OFFSET_HEADER),
        content_length=int(content_length)
        if content_length and content_length.isdigit() and not is_multipart(request.headers.get("content-type"))
        else None,
        storage=storage,
        settings=settings,
    )
    headers = {UPLOAD_OFFSET_HEADER: str(answer.receipt.received), "Cache-Control": "no-store"}
    if answer.error is not None:
        return _error(answer.error, headers)
    return JSONResponse(answer.receipt.model_dump(mode="json"), headers=headers)


@router.post(
    "/{session_id}/finalize",
    response_model=RecordingRead,
    responses={
        **SESSION_RESPONSES,
        409: {
            "description": "a file is incomplete (upload_incomplete: the answer says which and how far), or a request "
            "is still sending one or another finish is hashing the video (upload_in_progress, with Retry-After)"
        },
        422: {
            "description": "the video's SHA-256 is not the declared one, or the metadata is not JSON; the "
            "file's bytes are dropped and it is sent again from 0"
        },
    },
)
async def finalize(
    session_id: SessionIdPath,
    transactions: Transactions,
    caller: StreamingUploadCaller,
    settings: AppSettings,
    storage: StorageDep,
    background: BackgroundTasks,
) -> Response:
    """Check the files and make the recording visible, atomically; finishing again answers the same recording.

    A video sent in several requests is read once here to hash it; meanwhile the session's other requests
    answer 409 `upload_in_progress`."""
    finished = await finishing.finalize(transactions, caller, session_id, storage, settings)
    if isinstance(finished.outcome, ApiError):
        return _error(finished.outcome, {})
    for key in finished.leftovers:
        background.add_task(storage.delete, key)
    return JSONResponse(RecordingRead.of(finished.outcome).model_dump(mode="json"))
