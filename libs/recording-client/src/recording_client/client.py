"""`RecordingUploadClient`: one async HTTP call per method against recording-storage, errors mapped to the
contract's names. It keeps no state: resuming, retrying and queueing belong to `UploadManager`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import httpx

from recording_client.backoff import retry_after_seconds
from recording_client.errors import (
    ApiError,
    AuthenticationError,
    CorruptUploadError,
    IncompleteUploadError,
    NetworkError,
    OffsetMismatchError,
    ServerError,
    SessionExpiredError,
    UploadError,
    UploadInProgressError,
    UploadPaused,
    ValidationError,
)
from recording_client.throttle import TokenBucket

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1024 * 1024
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class UploadSession:
    session_id: str
    video_upload_url: str
    metadata_upload_url: str
    expires_at: str | None = None


@dataclass(frozen=True)
class FileStatus:
    received: int
    size: int | None


@dataclass(frozen=True)
class UploadStatus:
    session_id: str
    video: FileStatus
    metadata: FileStatus
    raw: Mapping[str, Any]

    @property
    def recording_id(self) -> str | None:
        """The recording's id when the session was already finalized (`recording_id`, or `recording.id`)."""
        value = self.raw.get("recording_id")
        recording = self.raw.get("recording")
        if value is None and isinstance(recording, Mapping):
            value = recording.get("id")
        return None if value is None else str(value)


# The server's field names are read leniently: these are the spellings accepted for each figure.
_RECEIVED_KEYS = ("received", "bytes_received", "received_bytes", "offset", "uploaded")
_SIZE_KEYS = ("size", "declared_size", "file_size", "expected_size", "total")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _file_status(document: Mapping[str, Any], name: str) -> FileStatus:
    section: Any = document.get(name)
    files = document.get("files")
    if not isinstance(section, Mapping) and isinstance(files, Mapping):
        section = files.get(name)
    if not isinstance(section, Mapping):
        # A flat document: `video_received`, `video_size`, ...
        prefix = f"{name}_"
        section = {k.removeprefix(prefix): v for k, v in document.items() if k.startswith(prefix)}
    received = next((_int_or_none(section.get(k)) for k in _RECEIVED_KEYS if k in section), None)
    size = next((_int_or_none(section.get(k)) for k in _SIZE_KEYS if k in section), None)
    if received is None:
        raise ServerError(f"the upload status does not say how many {name} bytes were received", details=document)
    return FileStatus(received=received, size=size)


def parse_upload_status(document: Any, session_id: str) -> UploadStatus:
    if not isinstance(document, Mapping):
        raise ServerError("the upload status is not a JSON object")
    return UploadStatus(
        session_id=str(document.get("session_id", session_id)),
        video=_file_status(document, "video"),
        metadata=_file_status(document, "metadata"),
        raw=document,
    )


def _envelope(response: httpx.Response) -> tuple[str, str | None, Any]:
    """Message, code and details of the suite's error document, or the response text when it is not one."""
    try:
        document = response.json()
    except ValueError:
        return (response.text.strip()[:300] or response.reason_phrase), None, None
    error = document.get("error") if isinstance(document, Mapping) else None
    if isinstance(error, Mapping):
        return str(error.get("message", response.reason_phrase)), error.get("code"), error.get("details")
    if isinstance(document, Mapping) and "detail" in document:
        return str(document["detail"]), None, document["detail"]
    return response.reason_phrase, None, document


def _offset_from(response: httpx.Response, details: Any) -> int | None:
    header = response.headers.get("Upload-Offset")
    if header is not None and header.strip().isdigit():
        return int(header)
    if isinstance(details, Mapping):
        for key in ("offset", "upload_offset", "received", "current_offset"):
            value = _int_or_none(details.get(key))
            if value is not None:
                return value
    return None


def raise_for_response(response: httpx.Response, *, operation: str = "") -> None:
    """Raise the contract's error for a non-2xx answer; `operation` ("upload", "finalize", "session") picks
    what 404/409/410/422 mean."""
    status = response.status_code
    if status < 400:
        return
    message, code, details = _envelope(response)
    common: dict[str, Any] = {"status_code": status, "code": code, "details": details}
    if status in (401, 403):
        raise AuthenticationError(message, **common)
    if status == 410 or (status == 404 and operation in ("upload", "finalize", "session")):
        raise SessionExpiredError(message, **common)
    if status == 409 and code == "upload_in_progress":
        raise UploadInProgressError(
            message, retry_after=retry_after_seconds(response.headers.get("Retry-After")), **common
        )
    if status == 409 and operation == "upload":
        raise OffsetMismatchError(message, offset=_offset_from(response, details), **common)
    if status == 409 and operation == "finalize":
        raise IncompleteUploadError(message, **common)
    if status == 422 and operation == "finalize":
        raise CorruptUploadError(message, **common)
    if status in (408, 429) or status >= 500:
        raise ServerError(message, retry_after=retry_after_seconds(response.headers.get("Retry-After")), **common)
    raise ValidationError(message, **common)


class RecordingUploadClient:
    """Async client of recording-storage (`base_url` like `http://host:8005/api/v1`).

    Use it as an async context manager, or call `aclose()`. The bearer token goes only to URLs on the same
    origin as `base_url`, so an upload URL pointing elsewhere never receives it.
    """

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        timeout: float = 60,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.chunk_size = chunk_size
        self._token = api_token
        self._origin = urlsplit(self.base_url)[:2]
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False)
        logger.info("RecordingUploadClient initialized for %s", self.base_url)

    async def __aenter__(self) -> RecordingUploadClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def url_for(self, path_or_url: str) -> str:
        """An absolute URL: upload URLs from the server may be absolute, root-relative or relative to base_url."""
        if urlsplit(path_or_url).scheme:
            return path_or_url
        if path_or_url.startswith("/"):
            return urljoin(self.base_url + "/", path_or_url)
        return f"{self.base_url}/{path_or_url}"

    def _headers(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if urlsplit(url)[:2] == self._origin and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        headers.update(extra or {})
        return headers

    async def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        operation: str = "",
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        url = self.url_for(path_or_url)
        try:
            response = await self._http.request(method, url, headers=self._headers(url, headers), **kwargs)
        except httpx.TimeoutException as exc:
            raise NetworkError(f"{method} {url} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise NetworkError(f"{method} {url} failed: {exc or type(exc).__name__}") from exc
        raise_for_response(response, operation=operation)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(f"expected JSON from {response.request.url}", status_code=response.status_code) from exc

    async def health(self) -> Any:
        return self._json(await self._request("GET", "health"))

    async def test_connection(self) -> bool:
        """True when the server answers its health check."""
        try:
            await self._request("GET", "health")
        except ApiError as exc:
            logger.warning("API connection test failed: %s", exc)
            return False
        logger.info("API connection test successful")
        return True

    async def create_session(self, request: Mapping[str, Any]) -> UploadSession:
        """`POST /uploads/create-session` with the contract's body (`session_id`, `connection_info`,
        `file_size`, `metadata`, optionally `sha256`)."""
        document = self._json(await self._request("POST", "uploads/create-session", json=dict(request)))
        try:
            return UploadSession(
                session_id=str(document["session_id"]),
                video_upload_url=str(document["video_upload_url"]),
                metadata_upload_url=str(document["metadata_upload_url"]),
                expires_at=document.get("expires_at"),
            )
        except (KeyError, TypeError) as exc:
            raise ServerError(f"create-session answered without {exc}", details=document) from exc

    async def get_status(self, session_id: str) -> UploadStatus:
        response = await self._request("GET", f"uploads/{_segment(session_id)}/status", operation="session")
        return parse_upload_status(self._json(response), session_id)

    async def upload_file(
        self,
        url: str,
        path: Path,
        *,
        offset: int = 0,
        size: int | None = None,
        on_progress: ProgressCallback | None = None,
        throttle: TokenBucket | None = None,
        should_pause: Callable[[], bool] | None = None,
    ) -> int:
        """Send `path` from byte `offset` to its end as one raw body, read from disk a chunk at a time.

        `size` is the size declared for the session; a file that no longer has it is an `UploadError`.
        `on_progress` gets the count of bytes sent from the start of the file; `should_pause` is asked before
        each chunk and, when true, the request is abandoned with `UploadPaused` (the server keeps what it got).
        Returns the server's new offset.
        """
        actual = await asyncio.to_thread(lambda: path.stat().st_size)
        size = actual if size is None else size
        if actual != size:
            raise UploadError(f"{path.name} is {actual} bytes, {size} were declared: it changed since the upload began")
        if not 0 <= offset <= size:
            raise UploadError(f"offset {offset} is outside {path.name} ({size} bytes)")
        paused = False

        async def body() -> AsyncIterator[bytes]:
            nonlocal paused
            handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
            try:
                await asyncio.to_thread(handle.seek, offset)
                position = offset
                while position < size:
                    if should_pause is not None and should_pause():
                        paused = True
                        raise UploadPaused(f"upload of {path.name} paused at byte {position}")
                    amount = min(self.chunk_size, size - position)
                    if throttle is not None:
                        await throttle.acquire(amount)
                    data = await asyncio.to_thread(handle.read, amount)
                    if not data:
                        raise UploadError(f"{path.name} ended at byte {position}, before its {size} bytes")
                    yield data
                    position += len(data)
                    if on_progress is not None:
                        on_progress(position)
            finally:
                await asyncio.to_thread(handle.close)

        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size - offset),
            "Upload-Offset": str(offset),
        }
        try:
            response = await self._request("POST", url, operation="upload", headers=headers, content=body())
        except NetworkError as exc:
            if paused:
                raise UploadPaused(str(exc)) from exc
            raise
        return _offset_after(response, size)

    async def finalize(self, session_id: str) -> Any:
        """`POST /uploads/{id}/finalize`: the recording the server made visible."""
        return self._json(await self._request("POST", f"uploads/{_segment(session_id)}/finalize", operation="finalize"))

    async def list_recordings(self, *, page: int = 1, page_size: int = 50, **filters: Any) -> Any:
        """`GET /recordings`: a page `{"count", "next", "previous", "results"}`; filters are passed as given
        (`wats_user`, `machine`, `server`, `connection_type`, `start`, `end`, ...)."""
        params = {k: v for k, v in filters.items() if v is not None}
        params.update(page=page, page_size=page_size)
        return self._json(await self._request("GET", "recordings", params=params))

    async def get_recording(self, recording_id: str) -> Any:
        return self._json(await self._request("GET", f"recordings/{_segment(recording_id)}"))

    async def delete_recording(self, file_id: str) -> None:
        await self._request("DELETE", f"recordings/{_segment(file_id)}")


def _segment(value: str) -> str:
    """A path segment from an id, so an id cannot climb out of its route."""
    return quote(str(value), safe="")


def _offset_after(response: httpx.Response, size: int) -> int:
    header = response.headers.get("Upload-Offset")
    if header is not None and header.strip().isdigit():
        return int(header)
    try:
        document = response.json()
    except ValueError:
        return size
    if isinstance(document, Mapping):
        for key in _RECEIVED_KEYS:
            value = _int_or_none(document.get(key))
            if value is not None:
                return value
    return size
