"""Errors of the upload API, as it answers them."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from mirante.web.errors import ApiError, ConflictError, NotFoundError, PayloadTooLargeError, ValidationFailedError

UPLOAD_OFFSET_HEADER = "Upload-Offset"


class SessionNotFoundError(NotFoundError):
    """Unknown, or not the caller's: both answer the same, so ids of others' sessions cannot be probed."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no upload session {session_id!r}", code="session_not_found")


class SessionExpiredError(ApiError):
    status_code, code = 410, "session_expired"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"upload session {session_id!r} has expired and its partial data is removed: create a new session"
        )


class SessionFinishedError(ConflictError):
    def __init__(self, session_id: str, recording_id: str | None) -> None:
        super().__init__(
            f"upload session {session_id!r} is finished: its recording is {recording_id}",
            code="session_finished",
            details={"recording_id": recording_id},
        )


class SessionIdInUseError(ConflictError):
    """The recorder's session id names an open session that declared another file."""

    def __init__(self, client_session_id: str, session_id: str) -> None:
        super().__init__(
            f"session_id {client_session_id!r} is already being uploaded with another size or SHA-256 (upload "
            f"session {session_id!r}): give the recording its own session_id",
            code="session_id_in_use",
            details={"session_id": session_id},
        )


class UploadBusyError(ConflictError):
    """Another request holds the file (or the session, while finishing)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is in use by another request: wait for it to end, then ask for the status",
            code="upload_in_progress",
            headers={"Retry-After": "5"},
        )


class UploadInProgressError(ConflictError):
    """A live lease of another request holds the file: `offset` is what is recorded so far (it grows while that
    request runs), and Retry-After says when its lease would lapse if it is not renewed."""

    def __init__(self, kind: str, offset: int | None, lease_until: datetime | None, now: datetime) -> None:
        wait = 5 if lease_until is None else max(1, math.ceil((lease_until - now).total_seconds()))
        details: dict[str, Any] = {"kind": kind}
        headers = {"Retry-After": str(wait)}
        if offset is not None:
            details["offset"] = offset
            headers[UPLOAD_OFFSET_HEADER] = str(offset)
        super().__init__(
            f"another request is sending the {kind}: wait for it to end, then ask for the status",
            code="upload_in_progress",
            details=details,
            headers=headers,
        )


class OffsetMismatchError(ConflictError):
    """As tus: the client's offset is not the server's; nothing was changed, the answer says where to continue."""

    def __init__(self, kind: str, offset: int, sent: int | None) -> None:
        sent_text = "no Upload-Offset" if sent is None else f"Upload-Offset {sent}"
        super().__init__(
            f"the {kind} continues at byte {offset}, not at {sent_text}: resend from {offset}",
            code="offset_mismatch",
            details={"kind": kind, "offset": offset},
            headers={UPLOAD_OFFSET_HEADER: str(offset)},
        )


class InvalidOffsetError(ApiError):
    status_code, code = 400, "invalid_upload_offset"

    def __init__(self, value: str) -> None:
        super().__init__(f"Upload-Offset must be a non-negative integer, not {value[:40]!r}")


class FileCompleteError(ConflictError):
    def __init__(self, kind: str, size: int) -> None:
        super().__init__(
            f"the {kind} is complete ({size} bytes): nothing more can be appended",
            code="file_complete",
            details={"kind": kind, "offset": size},
            headers={UPLOAD_OFFSET_HEADER: str(size)},
        )


class DeclaredSizeTooLargeError(PayloadTooLargeError):
    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} of {size} bytes is above the limit of {limit} bytes",
            code="file_too_large",
            details={"size": size, "limit": limit},
        )


class BodyBeyondSizeError(PayloadTooLargeError):
    """The body carries more than the file has left; none of this request's bytes are kept."""

    def __init__(self, kind: str, offset: int, limit: int) -> None:
        super().__init__(
            f"the body goes past the {kind}'s {limit} bytes (it started at byte {offset}); nothing of it was kept",
            code="body_beyond_size",
            details={"kind": kind, "offset": offset, "size": limit},
            headers={UPLOAD_OFFSET_HEADER: str(offset)},
        )


class UploadIdleError(ApiError):
    status_code, code = 408, "upload_idle"

    def __init__(self, kind: str, offset: int, seconds: float) -> None:
        super().__init__(
            f"no {kind} bytes arrived for {seconds:g} s; what arrived is kept: continue at byte {offset}",
            details={"kind": kind, "offset": offset},
            headers={UPLOAD_OFFSET_HEADER: str(offset)},
        )


class MalformedMultipartError(ApiError):
    status_code, code = 400, "malformed_multipart"

    def __init__(self, reason: str) -> None:
        super().__init__(f"the multipart body cannot be read: {reason}")


class UploadIncompleteError(ConflictError):
    def __init__(self, problems: dict[str, Any]) -> None:
        described = "; ".join(
            f"the {kind} has {state['received']} of {state['size'] if state['size'] is not None else '?'} bytes"
            for kind, state in problems.items()
        )
        super().__init__(
            f"the upload is incomplete: {described}; continue it, then finish again",
            code="upload_incomplete",
            details=problems,
        )


class ChecksumMismatchError(ValidationFailedError):
    """The video's bytes are not the declared ones: they are dropped, so the upload starts again at 0."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            f"the video's SHA-256 is {actual}, {expected} was declared: its bytes were dropped, upload it again "
            "from offset 0",
            code="checksum_mismatch",
            details={"kind": "video", "expected": expected, "actual": actual, "offset": 0},
        )


class MetadataNotJsonError(ValidationFailedError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the metadata file is not a JSON object ({reason}): it was dropped, upload it again from offset 0",
            code="metadata_invalid",
            details={"kind": "metadata", "offset": 0},
        )


class StoredDataLostError(ConflictError):
    """The storage holds fewer bytes than were recorded (a crash before they reached the disk)."""

    def __init__(self, kind: str, offset: int) -> None:
        super().__init__(
            f"the {kind}'s stored bytes end at {offset}: continue from there",
            code="offset_mismatch",
            details={"kind": kind, "offset": offset},
            headers={UPLOAD_OFFSET_HEADER: str(offset)},
        )
