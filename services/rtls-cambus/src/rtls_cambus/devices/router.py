"""HTTP endpoints of devices: `/api/v1/devices`, `/devices/gateways[...]`, `/devices/cameras[...]`,
`/devices/camera-groups[...]`.

Every signed-in caller reads; admins place, change and remove devices and manage camera groups (hardware and
its placement are the site's layout). Status and last seen come from the ingest.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import Admin, Viewer
from rtls_cambus.devices import service
from rtls_cambus.devices.repository import DeviceFilters
from rtls_cambus.devices.schemas import (
    AssignedFilter,
    CameraCreate,
    CameraGroupCreate,
    CameraGroupFilter,
    CameraGroupId,
    CameraGroupRead,
    CameraGroupUpdate,
    CameraId,
    CameraMemberAdd,
    CameraRead,
    CameraUpdate,
    DeviceRead,
    GatewayCreate,
    GatewayId,
    GatewayRead,
    GatewayUpdate,
    KindFilter,
    StatusFilter,
    ZoneFilter,
)
from rtls_cambus.fields import BuildingFilter, FloorFilter, Search, search_text

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

_GATEWAY_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such gateway, or no floor `floor_id` or zone `zone_id`"},
    409: {"description": "MAC taken; a zone of another floor; a position on a floor without a plan"},
}
_CAMERA_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such camera, or no building `building_id` or floor `floor_id`"},
    409: {"description": "code taken in the building; a floor of another building"},
}


@router.get("")
async def list_devices(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    kind: KindFilter = None,
    building_id: BuildingFilter = None,
    floor_id: FloorFilter = None,
    status: StatusFilter = None,
    q: Search = None,
) -> Page[DeviceRead]:
    """Gateways and cameras together, by kind, building, floor, state, and name, MAC or code."""
    filters = DeviceFilters(kind=kind, building_id=building_id, floor_id=floor_id, status=status, search=search_text(q))
    found, count = await service.list_devices(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([DeviceRead.model_validate(device) for device in found], count)


@router.get("/gateways")
async def list_gateways(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    building_id: BuildingFilter = None,
    floor_id: FloorFilter = None,
    zone_id: ZoneFilter = None,
    status: StatusFilter = None,
    assigned: AssignedFilter = None,
    q: Search = None,
) -> Page[GatewayRead]:
    """Gateways by building, floor, zone, state, placement, and name or MAC."""
    filters = DeviceFilters(
        kind=service.GATEWAY,
        building_id=building_id,
        floor_id=floor_id,
        zone_id=zone_id,
        status=status,
        assigned=assigned,
        search=search_text(q),
    )
    found, count = await service.list_devices(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([GatewayRead.model_validate(device) for device in found], count)


@router.post("/gateways", status_code=status.HTTP_201_CREATED, responses=_GATEWAY_ANSWERS)
async def create_gateway(session: Session, principal: Admin, body: GatewayCreate, response: Response) -> GatewayRead:
    """Add a gateway (admins), placed on a floor, in a zone and at a point of the plan, or unplaced."""
    gateway = await service.create_gateway(session, body)
    response.headers["Location"] = f"/api/v1/devices/gateways/{gateway.id}"
    return GatewayRead.model_validate(gateway)


@router.get("/gateways/{gateway_id}")
async def get_gateway(session: Session, principal: Viewer, gateway_id: GatewayId) -> GatewayRead:
    return GatewayRead.model_validate(await service.get_device(session, service.GATEWAY, gateway_id))


@router.patch("/gateways/{gateway_id}", responses=_GATEWAY_ANSWERS)
async def update_gateway(session: Session, principal: Admin, gateway_id: GatewayId, body: GatewayUpdate) -> GatewayRead:
    """Change a gateway (admins). Moving it to another floor clears its zone and point unless given again."""
    return GatewayRead.model_validate(await service.update_gateway(session, gateway_id, body.changes()))


@router.delete("/gateways/{gateway_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_gateway(session: Session, principal: Admin, gateway_id: GatewayId) -> None:
    await service.delete_device(session, service.GATEWAY, gateway_id)


@router.get("/cameras")
async def list_cameras(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    building_id: BuildingFilter = None,
    floor_id: FloorFilter = None,
    status: StatusFilter = None,
    group_id: CameraGroupFilter = None,
    q: Search = None,
) -> Page[CameraRead]:
    """Cameras by building, floor, state, group, and name or code."""
    filters = DeviceFilters(
        kind=service.CAMERA,
        building_id=building_id,
        floor_id=floor_id,
        status=status,
        group_id=group_id,
        search=search_text(q),
    )
    found, count = await service.list_devices(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([CameraRead.model_validate(device) for device in found], count)


@router.post("/cameras", status_code=status.HTTP_201_CREATED, responses=_CAMERA_ANSWERS)
async def create_camera(session: Session, principal: Admin, body: CameraCreate, response: Response) -> CameraRead:
    """Add a camera to a building (admins); cameras that speak on CAM-BUS register themselves too."""
    camera = await service.create_camera(session, body)
    response.headers["Location"] = f"/api/v1/devices/cameras/{camera.id}"
    return CameraRead.model_validate(camera)


@router.get("/cameras/{camera_id}")
async def get_camera(session: Session, principal: Viewer, camera_id: CameraId) -> CameraRead:
    return CameraRead.model_validate(await service.get_device(session, service.CAMERA, camera_id))


@router.patch("/cameras/{camera_id}", responses=_CAMERA_ANSWERS)
async def update_camera(session: Session, principal: Admin, camera_id: CameraId, body: CameraUpdate) -> CameraRead:
    """Change a camera (admins). Moving it to another building clears its floor unless given again."""
    return CameraRead.model_validate(await service.update_camera(session, camera_id, body.changes()))


@router.delete("/cameras/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_camera(session: Session, principal: Admin, camera_id: CameraId) -> None:
    await service.delete_device(session, service.CAMERA, camera_id)


@router.get("/camera-groups")
async def list_camera_groups(
    session: Session, principal: Viewer, pagination: Pagination, q: Search = None
) -> Page[CameraGroupRead]:
    found, count = await service.list_groups(session, search_text(q), offset=pagination.offset, limit=pagination.limit)
    return pagination.build([CameraGroupRead.model_validate(group) for group in found], count)


@router.post("/camera-groups", status_code=status.HTTP_201_CREATED, responses={409: {"description": "name taken"}})
async def create_camera_group(
    session: Session, principal: Admin, body: CameraGroupCreate, response: Response
) -> CameraGroupRead:
    group = await service.create_group(session, body)
    response.headers["Location"] = f"/api/v1/devices/camera-groups/{group.id}"
    return CameraGroupRead.model_validate(group)


@router.get("/camera-groups/{group_id}")
async def get_camera_group(session: Session, principal: Viewer, group_id: CameraGroupId) -> CameraGroupRead:
    return CameraGroupRead.model_validate(await service.get_group(session, group_id))


@router.patch("/camera-groups/{group_id}", responses={409: {"description": "name taken"}})
async def update_camera_group(
    session: Session, principal: Admin, group_id: CameraGroupId, body: CameraGroupUpdate
) -> CameraGroupRead:
    return CameraGroupRead.model_validate(await service.update_group(session, group_id, body.changes()))


@router.delete("/camera-groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_camera_group(session: Session, principal: Admin, group_id: CameraGroupId) -> None:
    """Delete a group (admins); its cameras stay."""
    await service.delete_group(session, group_id)


@router.post(
    "/camera-groups/{group_id}/members",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such group, or no camera `device_id`"}},
)
async def add_camera_group_member(
    session: Session, principal: Admin, group_id: CameraGroupId, body: CameraMemberAdd
) -> None:
    """Add a camera to the group (admins); list them with `GET /devices/cameras?group_id=`."""
    await service.add_member(session, group_id, body.device_id)


@router.delete("/camera-groups/{group_id}/members/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_camera_group_member(
    session: Session, principal: Admin, group_id: CameraGroupId, camera_id: CameraId
) -> None:
    await service.remove_member(session, group_id, camera_id)
