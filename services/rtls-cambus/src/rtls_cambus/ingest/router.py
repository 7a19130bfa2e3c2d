"""HTTP endpoints of camera ingest: `/api/v1/devices/cameras/{camera_id}/events` (signed-in callers) and
`/api/v1/devices/cameras/{camera_id}/commands` (operators and up)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import AppSettings, Operator, Viewer
from rtls_cambus.devices.schemas import CameraId
from rtls_cambus.ingest import commands, events
from rtls_cambus.ingest.repository import EventFilters
from rtls_cambus.ingest.schemas import (
    AnalyticFilter,
    CameraCommand,
    CameraEventRead,
    CommandResult,
    LabelFilter,
    SinceFilter,
    TypeFilter,
    UntilFilter,
)

router = APIRouter(prefix="/api/v1/devices/cameras", tags=["devices"])

_COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "the camera has not spoken on CAM-BUS, its topic is unknown"},
    502: {"description": "the broker refused the command or could not be reached"},
    504: {"description": "the broker did not acknowledge in time"},
}


@router.get("/{camera_id}/events")
async def list_camera_events(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    camera_id: CameraId,
    since: SinceFilter = None,
    until: UntilFilter = None,
    label: LabelFilter = None,
    analytic: AnalyticFilter = None,
    type: TypeFilter = None,
) -> Page[CameraEventRead]:
    """The camera's analytic events, newest first; one per event id, as its last message left it."""
    filters = EventFilters(since=since, until=until, label=label, analytic=analytic, type=type)
    found, count = await events.list_events(
        session, camera_id, filters, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build([CameraEventRead.model_validate(event) for event in found], count)


@router.post("/{camera_id}/commands", responses=_COMMAND_ERRORS)
async def send_camera_command(
    session: Session,
    principal: Operator,
    settings: AppSettings,
    request: Request,
    camera_id: CameraId,
    body: CameraCommand,
) -> CommandResult:
    """Publish a command on the camera's CAM-BUS command topic (operators); answers once the broker acknowledged."""
    return await commands.send_command(
        session,
        camera_id,
        body,
        principal,
        mqtt_url=request.app.state.urls.mqtt_url,
        wait_seconds=settings.command_timeout_seconds,
    )
