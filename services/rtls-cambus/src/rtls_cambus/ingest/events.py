"""Reading camera events (writing them is the ingest's, in `service`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rtls_cambus.devices.service import CAMERA, get_device
from rtls_cambus.ingest import repository
from rtls_cambus.ingest.errors import InvalidRangeError
from rtls_cambus.ingest.models import CameraEvent
from rtls_cambus.ingest.repository import EventFilters


async def list_events(
    session: AsyncSession, camera_id: int, filters: EventFilters, *, offset: int, limit: int
) -> tuple[list[CameraEvent], int]:
    """A page of the camera's events; 404 for an unknown camera, 422 when `until` is not after `since`."""
    if filters.since is not None and filters.until is not None and filters.until <= filters.since:
        raise InvalidRangeError()
    await get_device(session, CAMERA, camera_id)
    return await repository.list_events(session, camera_id, filters, offset=offset, limit=limit)
