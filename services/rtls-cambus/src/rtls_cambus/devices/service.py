"""Gateways, cameras and camera groups. Runs in the caller's transaction (flush only).

A gateway's building comes from its floor; its zone must be a zone of that floor and its position a point on
that floor's plan. A gateway without a floor is unplaced (as the ingest registers gateways it has not met):
it has neither zone nor position. A camera belongs to a building and optionally to one of its floors.
Deleting a device removes it from its camera groups; deleting a group removes the memberships only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.errors import referenced
from rtls_cambus import rows
from rtls_cambus.buildings.service import get_building, get_floor
from rtls_cambus.devices import repository
from rtls_cambus.devices.errors import (
    CameraExistsError,
    CameraGroupExistsError,
    CameraGroupNotFoundError,
    CameraMemberNotFoundError,
    DeviceNotFoundError,
    FloorInAnotherBuildingError,
    GatewayExistsError,
    PlacementError,
    ZoneOnAnotherFloorError,
)
from rtls_cambus.devices.models import CameraGroup, Device
from rtls_cambus.devices.repository import DeviceFilters
from rtls_cambus.devices.schemas import CameraCreate, CameraGroupCreate, GatewayCreate
from rtls_cambus.floor_plans.service import bounds_of_floor
from rtls_cambus.zones.errors import PlanRequiredError
from rtls_cambus.zones.service import get_zone

GATEWAY = "gateway"
CAMERA = "camera"
_PLACEMENT = ("floor_id", "zone_id", "x_px", "y_px")


async def list_devices(
    session: AsyncSession, filters: DeviceFilters, *, offset: int, limit: int
) -> tuple[list[Device], int]:
    found, count = await repository.list_devices(session, filters, offset=offset, limit=limit)
    return list(found), count


async def get_device(session: AsyncSession, kind: str, device_id: int) -> Device:
    device = await repository.get_device(session, kind, device_id)
    if device is None:
        raise DeviceNotFoundError(kind, device_id)
    return device


async def _gateway_placement(session: AsyncSession, placement: dict[str, Any]) -> dict[str, Any]:
    """The placement columns checked, with the building the floor gives: 404 for a floor or zone that does not
    exist, 409 for a zone of another floor or a position on a floor without a plan, 422 for values that do not go
    together or a point off the plan."""
    floor_id, zone_id, x, y = (placement.get(name) for name in _PLACEMENT)
    if floor_id is None:
        for name in ("zone_id", "x_px", "y_px"):
            if placement.get(name) is not None:
                raise PlacementError(f"{name} needs a floor_id", name)
        return {**placement, "building_id": None}
    floor = await referenced(get_floor(session, floor_id), "floor_id")
    if (x is None) != (y is None):
        raise PlacementError("give both x_px and y_px, or neither", "x_px" if x is None else "y_px")
    if x is not None and y is not None:
        bounds = await bounds_of_floor(session, floor_id)
        if bounds is None:
            raise PlanRequiredError(floor_id, "a position")
        if x > bounds.width or y > bounds.height:
            raise PlacementError(f"({x}, {y}) lies outside the {bounds.width}x{bounds.height} plan", "x_px")
    if zone_id is not None:
        zone = await referenced(get_zone(session, zone_id), "zone_id")
        if zone.floor_id != floor_id:
            raise ZoneOnAnotherFloorError(zone_id, zone.floor_id, floor_id)
    return {**placement, "building_id": floor.building_id}


async def create_gateway(session: AsyncSession, body: GatewayCreate) -> Device:
    values = rows.column_values(body.model_dump())
    placement = await _gateway_placement(session, {name: values.pop(name) for name in _PLACEMENT})
    gateway = Device(kind=GATEWAY, **values, **placement)
    if await rows.add(session, gateway):
        raise GatewayExistsError(body.mac)
    await session.refresh(gateway)
    return gateway


async def update_gateway(session: AsyncSession, device_id: int, changes: dict[str, Any]) -> Device:
    gateway = await get_device(session, GATEWAY, device_id)
    if any(name in changes for name in _PLACEMENT):
        current = {name: getattr(gateway, name) for name in _PLACEMENT}
        if "floor_id" in changes and changes["floor_id"] != gateway.floor_id:
            # Another floor: the old zone and point mean nothing there unless given again.
            current.update(zone_id=None, x_px=None, y_px=None)
        merged = {**current, **{name: changes[name] for name in _PLACEMENT if name in changes}}
        changes = {**changes, **await _gateway_placement(session, merged)}
    if await rows.change(session, gateway, changes):
        raise GatewayExistsError(changes.get("mac", gateway.mac or ""))
    await session.refresh(gateway)
    return gateway


async def _camera_placement(session: AsyncSession, building_id: int, floor_id: int | None) -> None:
    await referenced(get_building(session, building_id), "building_id")
    if floor_id is not None:
        floor = await referenced(get_floor(session, floor_id), "floor_id")
        if floor.building_id != building_id:
            raise FloorInAnotherBuildingError(floor_id, floor.building_id, building_id)


async def create_camera(session: AsyncSession, body: CameraCreate) -> Device:
    await _camera_placement(session, body.building_id, body.floor_id)
    camera = Device(kind=CAMERA, **rows.column_values(body.model_dump()))
    if await rows.add(session, camera):
        raise CameraExistsError(body.code)
    await session.refresh(camera)
    return camera


async def update_camera(session: AsyncSession, device_id: int, changes: dict[str, Any]) -> Device:
    camera = await get_device(session, CAMERA, device_id)
    if "building_id" in changes or "floor_id" in changes:
        building_id = changes.get("building_id", camera.building_id)
        floor_id = changes.get("floor_id", camera.floor_id)
        if "building_id" in changes and "floor_id" not in changes and building_id != camera.building_id:
            floor_id = None
            changes = {**changes, "floor_id": None}
        if building_id is not None:
            await _camera_placement(session, building_id, floor_id)
    if await rows.change(session, camera, changes):
        raise CameraExistsError(changes.get("code", camera.code or ""))
    await session.refresh(camera)
    return camera


async def delete_device(session: AsyncSession, kind: str, device_id: int) -> None:
    await rows.remove(session, await get_device(session, kind, device_id))


async def list_groups(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[list[CameraGroup], int]:
    found, count = await repository.list_groups(session, search, offset=offset, limit=limit)
    return list(found), count


async def get_group(session: AsyncSession, group_id: int) -> CameraGroup:
    group = await repository.get_group(session, group_id)
    if group is None:
        raise CameraGroupNotFoundError(group_id)
    return group


async def create_group(session: AsyncSession, body: CameraGroupCreate) -> CameraGroup:
    group = CameraGroup(**rows.column_values(body.model_dump()))
    if await rows.add(session, group):
        raise CameraGroupExistsError()
    await session.refresh(group)
    return group


async def update_group(session: AsyncSession, group_id: int, changes: dict[str, Any]) -> CameraGroup:
    group = await get_group(session, group_id)
    if await rows.change(session, group, changes):
        raise CameraGroupExistsError()
    await session.refresh(group)
    return group


async def delete_group(session: AsyncSession, group_id: int) -> None:
    await rows.remove(session, await get_group(session, group_id))


async def add_member(session: AsyncSession, group_id: int, device_id: int) -> None:
    await get_group(session, group_id)
    await referenced(get_device(session, CAMERA, device_id), "device_id")
    await repository.add_member(session, group_id, device_id)


async def remove_member(session: AsyncSession, group_id: int, device_id: int) -> None:
    await get_group(session, group_id)
    if not await repository.remove_member(session, group_id, device_id):
        raise CameraMemberNotFoundError(group_id, device_id)
