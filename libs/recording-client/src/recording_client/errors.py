"""The client's errors, named as the WATS upload contract names them, and the HTTP status each one stands for.

Every error says whether retrying the same request later can succeed (`retriable`); the upload manager
retries those with backoff and gives up at once on the others. Two upload outcomes are neither: a 409 on a
file upload (`OffsetMismatchError`) means "continue from the server's offset", and a 410
(`SessionExpiredError`) means "start a new session".
"""

from __future__ import annotations

from typing import Any

RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ApiError(Exception):
    """Base of every error the client raises."""

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details
        # Seconds the server asked us to wait (`Retry-After`), when it said so.
        self.retry_after = retry_after

    def __str__(self) -> str:
        prefix = f"{self.status_code} " if self.status_code is not None else ""
        code = f"{self.code}: " if self.code else ""
        return f"{prefix}{code}{self.message}"


class NetworkError(ApiError):
    """The server could not be reached or the connection broke (including timeouts)."""

    retriable = True


class ServerError(ApiError):
    """The server failed or asked us to come back later (5xx, 408, 429)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retriable = self.status_code in RETRIABLE_STATUSES


class AuthenticationError(ApiError):
    """The token was refused (401) or lacks the right (403): fix the configuration, retrying will not help."""


class ValidationError(ApiError):
    """The server refused the request as it stands (400, 404, 413, 422 and other 4xx)."""


class UploadError(ApiError):
    """An upload-specific failure: a local file problem, or a finalize the server refused."""


class OffsetMismatchError(UploadError):
    """409 on a file upload: the server holds `offset` bytes, not what we sent from; continue there."""

    def __init__(self, message: str, *, offset: int | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.offset = offset


class UploadInProgressError(UploadError):
    """409 `upload_in_progress`: another request (an earlier attempt the server has not seen end, or a server
    replica that died mid-upload) still holds the file; retry after `retry_after`, then resume from the status."""

    retriable = True


class SessionExpiredError(UploadError):
    """410 (or 404 for a session the server no longer knows): the upload session is gone; open a new one."""


class IncompleteUploadError(UploadError):
    """409 on finalize: some bytes are missing; read the status and send the rest."""


class CorruptUploadError(UploadError):
    """422 on finalize: what the server holds does not match the declared size or SHA-256."""


class UploadPaused(Exception):  # noqa: N818 - a signal, not a failure
    """The upload window closed while a file was being sent; the upload continues when it opens again."""
