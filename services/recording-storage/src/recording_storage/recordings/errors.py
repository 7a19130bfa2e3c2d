"""Errors of the recordings API, as it answers them."""

from __future__ import annotations

from mirante.web.errors import ApiError, ForbiddenError, NotFoundError


class RecordingNotFoundError(NotFoundError):
    """Unknown, or outside the caller's tenant: both answer the same."""

    def __init__(self, recording_id: object) -> None:
        super().__init__(f"no recording {recording_id}", code="recording_not_found")


class RecordingFileMissingError(NotFoundError):
    def __init__(self, recording_id: object, kind: str) -> None:
        super().__init__(f"recording {recording_id} has no {kind} file", code="file_not_found")


class RangeNotSatisfiableError(ApiError):
    status_code, code = 416, "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the range is outside the file's {size} bytes",
            details={"size": size},
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
        )


class ContentUrlExpiredError(ForbiddenError):
    code = "content_url_expired"

    def __init__(self) -> None:
        super().__init__("this content URL has expired: ask POST /recordings/{id}/content-url for a new one")


class ContentUrlInvalidError(ForbiddenError):
    code = "content_url_invalid"

    def __init__(self) -> None:
        super().__init__("this content URL's signature does not match it")
