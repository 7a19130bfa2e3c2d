"""Request and response bodies of the upload endpoints; the create-session body is the recorder's, as it sends it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from mirante.types import REFUSES_NUL, DateTime, Int32, Int64, NotBlank

SESSION_ID_PATTERN: Final = r"^ups_[0-9a-f]{32}$"
_NAIVE_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?")

SessionIdPath = Annotated[
    str, Path(pattern=SESSION_ID_PATTERN, description="the id create-session answered: `ups_` and 32 hex digits")
]
FileKindQuery = Literal["video", "metadata"]

Count = Annotated[Int32, Field(ge=0)]
Size = Annotated[Int64, Field(ge=0)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), REFUSES_NUL]
Sha256 = Annotated[
    str,
    StringConstraints(to_lower=True, pattern=r"^[0-9a-fA-F]{64}$"),
    Field(description="SHA-256 of the video, 64 hex digits"),
]


def _naive_is_utc(value: object) -> object:
    # The recorder sends its start time without an offset (`2024-10-26T15:00:22.123456`); it is read as UTC.
    if isinstance(value, str) and _NAIVE_DATE_TIME.fullmatch(value):
        return value.replace(" ", "T") + "Z"
    return value


StartTime = Annotated[
    DateTime,
    BeforeValidator(_naive_is_utc),
    Field(description="when the recording started: RFC 3339; a time without an offset is read as UTC"),
]


class ConnectionInfo(BaseModel):
    """The RDP connection that was recorded and the WATS user who made it."""

    model_config = ConfigDict(extra="allow")

    con_codigo: Int32 | None = Field(default=None, description="the connection's id in WATS")
    ip: Name | None = Field(default=None, description="address of the server connected to")
    name: Name | None = Field(default=None, description="name of the server connected to")
    user: Name | None = Field(default=None, description="account used on the server")
    connection_type: Name | None = Field(default=None, examples=["RDP"])
    wats_user: Name | None = Field(default=None, examples=["jefferson.silva"])
    wats_user_machine: Name | None = Field(default=None, examples=["DESKTOP-ABC123"])
    wats_user_ip: Name | None = None


class RecorderSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    fps: Count | None = None
    quality: Count | None = None
    resolution_scale: Annotated[float, Field(ge=0, le=100)] | None = None
    max_file_size_mb: Count | None = None
    max_duration_minutes: Count | None = None


class SessionMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    start_time: StartTime
    recorder_settings: RecorderSettings | None = None


class CreateSession(BaseModel):
    """The recorder's description of a recording it is about to send."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "rdp_123_1729950022",
                    "connection_info": {
                        "con_codigo": 123,
                        "ip": "192.168.1.100",
                        "name": "Production Server",
                        "user": "administrator",
                        "connection_type": "RDP",
                        "wats_user": "jefferson.silva",
                        "wats_user_machine": "DESKTOP-ABC123",
                        "wats_user_ip": "192.168.1.50",
                    },
                    "file_size": 15728640,
                    "metadata": {
                        "start_time": "2024-10-26T15:00:22.123456",
                        "recorder_settings": {"fps": 10, "quality": 23, "resolution_scale": 1.0},
                    },
                }
            ]
        }
    )

    session_id: Annotated[str, NotBlank(max_length=200)] = Field(
        description="the recorder's own id of the recorded session"
    )
    connection_info: ConnectionInfo
    file_size: Size = Field(description="size of the video in bytes")
    metadata: SessionMetadata
    sha256: Sha256 | None = Field(default=None, description="SHA-256 of the video; checked when the upload finishes")
    metadata_size: Size | None = Field(
        default=None, description="size of the metadata file in bytes, when known (then checked like the video's)"
    )

    def details(self) -> dict[str, Any]:
        """What is kept with the session and its recording: connection info and metadata, as JSON."""
        return self.model_dump(mode="json", include={"connection_info", "metadata"}, exclude_unset=True)


class SessionCreated(BaseModel):
    """Where to send the files, and until when."""

    session_id: str = Field(description="the upload session's id (not the recorder's)")
    metadata_upload_url: str
    video_upload_url: str
    expires_at: datetime
    status_url: str
    finalize_url: str
    max_video_bytes: int
    max_metadata_bytes: int


class FileStatus(BaseModel):
    received: int = Field(
        description="bytes stored durably: the offset to continue at (while a request is sending the file, it "
        "grows every few seconds)"
    )
    size: int | None = Field(description="declared size, when one was declared")
    complete: bool
    uploading: bool = Field(
        description="a request is sending this file now (another one gets 409 upload_in_progress until it ends)"
    )


class SessionStatus(BaseModel):
    session_id: str
    client_session_id: str
    status: Literal["open", "completed", "expired"]
    expires_at: datetime
    video: FileStatus
    metadata: FileStatus
    recording_id: str | None


class FileReceipt(BaseModel):
    """What one upload request left: the file's new offset."""

    session_id: str
    kind: FileKindQuery
    received: int
    size: int | None
    complete: bool
