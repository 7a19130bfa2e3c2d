"""HTTP endpoints of buildings and floors: `/api/v1/buildings[...]`, `/api/v1/floors[...]`.

Every signed-in caller reads; admins create, change and delete (the site's layout is theirs).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.buildings import service
from rtls_cambus.buildings.repository import FloorFilters
from rtls_cambus.buildings.schemas import (
    BuildingCreate,
    BuildingId,
    BuildingRead,
    BuildingUpdate,
    FloorCreate,
    FloorId,
    FloorRead,
    FloorUpdate,
    LevelFilter,
)
from rtls_cambus.deps import Admin, Viewer
from rtls_cambus.fields import BuildingFilter, Search, search_text

router = APIRouter(prefix="/api/v1", tags=["buildings"])

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "a unique name is taken, or the row is still referenced"}
}


@router.get("/buildings")
async def list_buildings(
    session: Session, principal: Viewer, pagination: Pagination, q: Search = None
) -> Page[BuildingRead]:
    """Buildings by name, filtered by part of the name or code."""
    found, count = await service.list_buildings(
        session, search_text(q), offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build([BuildingRead.model_validate(row) for row in found], count)


@router.post("/buildings", status_code=status.HTTP_201_CREATED, responses=_CONFLICT)
async def create_building(session: Session, principal: Admin, body: BuildingCreate, response: Response) -> BuildingRead:
    """Add a building (admins). 409 when its name or code is taken."""
    building = await service.create_building(session, body)
    response.headers["Location"] = f"/api/v1/buildings/{building.id}"
    return BuildingRead.model_validate(building)


@router.get("/buildings/{building_id}")
async def get_building(session: Session, principal: Viewer, building_id: BuildingId) -> BuildingRead:
    return BuildingRead.model_validate(await service.get_building(session, building_id))


@router.patch("/buildings/{building_id}", responses=_CONFLICT)
async def update_building(
    session: Session, principal: Admin, building_id: BuildingId, body: BuildingUpdate
) -> BuildingRead:
    """Change a building (admins); omitted fields stay, null clears."""
    return BuildingRead.model_validate(await service.update_building(session, building_id, body.changes()))


@router.delete("/buildings/{building_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_CONFLICT)
async def delete_building(session: Session, principal: Admin, building_id: BuildingId) -> None:
    """Delete a building (admins). 409 while it has floors or devices."""
    await service.delete_building(session, building_id)


@router.get("/floors")
async def list_floors(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    building_id: BuildingFilter = None,
    level: LevelFilter = None,
    q: Search = None,
) -> Page[FloorRead]:
    """Floors by building and level."""
    filters = FloorFilters(building_id=building_id, level=level, search=search_text(q))
    found, count = await service.list_floors(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([FloorRead.model_validate(row) for row in found], count)


@router.post(
    "/floors",
    status_code=status.HTTP_201_CREATED,
    responses={**_CONFLICT, 404: {"description": "no building `building_id`"}},
)
async def create_floor(session: Session, principal: Admin, body: FloorCreate, response: Response) -> FloorRead:
    """Add a floor to a building (admins). 409 when the building has a floor at that level; 404 without it."""
    floor = await service.create_floor(session, body)
    response.headers["Location"] = f"/api/v1/floors/{floor.id}"
    return FloorRead.model_validate(floor)


@router.get("/floors/{floor_id}")
async def get_floor(session: Session, principal: Viewer, floor_id: FloorId) -> FloorRead:
    return FloorRead.model_validate(await service.get_floor(session, floor_id))


@router.patch("/floors/{floor_id}", responses=_CONFLICT)
async def update_floor(session: Session, principal: Admin, floor_id: FloorId, body: FloorUpdate) -> FloorRead:
    """Change a floor's level, name or description (admins)."""
    return FloorRead.model_validate(await service.update_floor(session, floor_id, body.changes()))


@router.delete("/floors/{floor_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_CONFLICT)
async def delete_floor(session: Session, principal: Admin, floor_id: FloorId) -> None:
    """Delete a floor and its plan (admins). 409 while it has zones or devices."""
    await service.delete_floor(session, floor_id)
