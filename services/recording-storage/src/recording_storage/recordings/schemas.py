"""Response bodies and query parameters of the recordings endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query
from pydantic import BaseModel, Field

from mirante.types import DateTime, Text
from recording_storage.models import Recording

RecordingIdPath = Annotated[uuid.UUID, Path(description="the recording's id (a UUID)")]
Filter = Annotated[Text | None, Query(max_length=255)]


class RecordingRead(BaseModel):
    """A verified recording: the connection it recorded and its files."""

    id: str
    file_id: str = Field(description="the same id, under the name the recorder's client uses")
    session_id: str = Field(description="the upload session it came from")
    client_session_id: str = Field(description="the recorder's own session id")
    wats_user: str | None
    wats_user_machine: str | None
    wats_user_ip: str | None
    server_name: str | None
    server_ip: str | None
    server_user: str | None
    connection_type: str | None
    con_codigo: int | None
    start_time: datetime | None
    recorder_settings: dict[str, Any] | None
    video_size: int
    video_sha256: str
    metadata_size: int | None
    created_at: datetime = Field(description="when the upload was finished")

    @classmethod
    def of(cls, recording: Recording) -> RecordingRead:
        settings = (recording.details.get("metadata") or {}).get("recorder_settings")
        return cls(
            id=str(recording.id),
            file_id=str(recording.id),
            session_id=recording.session_id,
            client_session_id=recording.client_session_id,
            wats_user=recording.wats_user,
            wats_user_machine=recording.wats_user_machine,
            wats_user_ip=recording.wats_user_ip,
            server_name=recording.server_name,
            server_ip=recording.server_ip,
            server_user=recording.server_user,
            connection_type=recording.connection_type,
            con_codigo=recording.con_codigo,
            start_time=recording.start_time,
            recorder_settings=settings if isinstance(settings, dict) else None,
            video_size=recording.video_size,
            video_sha256=recording.video_sha256,
            metadata_size=recording.metadata_size,
            created_at=recording.created_at,
        )


class ContentUrl(BaseModel):
    """A signed URL that opens one file of a recording without credentials until `expires_at`."""

    url: str = Field(description="the content URL with `expires` and `signature`; a `<video src>` can use it")
    expires_at: datetime
    expires_in: int = Field(description="seconds from now until it expires")


class RecordingFilterParams(BaseModel):
    wats_user: str | None = None
    machine: str | None = None
    server: str | None = None
    connection_type: str | None = None
    start: datetime | None = None
    end: datetime | None = None


async def recording_filters(
    wats_user: Annotated[Filter, Query(description="the WATS user who recorded, exactly")] = None,
    machine: Annotated[Filter, Query(description="the WATS user's machine, exactly")] = None,
    server: Annotated[Filter, Query(description="the server connected to: its name or its IP address")] = None,
    connection_type: Annotated[Filter, Query(description="e.g. RDP")] = None,
    start: Annotated[DateTime | None, Query(description="recordings started at or after this instant")] = None,
    end: Annotated[DateTime | None, Query(description="recordings started before this instant")] = None,
) -> RecordingFilterParams:
    return RecordingFilterParams(
        wats_user=wats_user, machine=machine, server=server, connection_type=connection_type, start=start, end=end
    )


RecordingFilterQuery = Annotated[RecordingFilterParams, Depends(recording_filters)]
