"""Client of recording-storage: resumable uploads of session recordings, a persistent upload queue, a CLI."""

from recording_client.client import FileStatus, RecordingUploadClient, UploadSession, UploadStatus
from recording_client.config import ApiConfig, ConfigError
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
from recording_client.manager import UploadManager
from recording_client.schedule import UploadWindow
from recording_client.throttle import TokenBucket

__all__ = [
    "ApiConfig",
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "CorruptUploadError",
    "FileStatus",
    "IncompleteUploadError",
    "NetworkError",
    "OffsetMismatchError",
    "RecordingUploadClient",
    "ServerError",
    "SessionExpiredError",
    "TokenBucket",
    "UploadError",
    "UploadInProgressError",
    "UploadManager",
    "UploadPaused",
    "UploadSession",
    "UploadStatus",
    "UploadWindow",
    "ValidationError",
]
