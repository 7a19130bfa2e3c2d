"""HTTP endpoints of zones: `/api/v1/zones[...]`. Every signed-in caller reads; admins change the layout."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import Admin, Viewer
from rtls_cambus.fields import BuildingFilter, FloorFilter, Search, search_text
from rtls_cambus.zones import service
from rtls_cambus.zones.repository import ZoneFilters
from rtls_cambus.zones.schemas import RestrictedFilter, ZoneCreate, ZoneId, ZoneRead, ZoneUpdate

router = APIRouter(prefix="/api/v1/zones", tags=["zones"])


@router.get("")
async def list_zones(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    floor_id: FloorFilter = None,
    building_id: BuildingFilter = None,
    restricted: RestrictedFilter = None,
    q: Search = None,
) -> Page[ZoneRead]:
    """Zones by floor, building, restriction and name."""
    filters = ZoneFilters(floor_id=floor_id, building_id=building_id, restricted=restricted, search=search_text(q))
    found, count = await service.list_zones(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([ZoneRead.model_validate(zone) for zone in found], count)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "no floor `floor_id`"},
        409: {"description": "name taken on the floor, or a polygon for a floor without a plan"},
    },
)
async def create_zone(session: Session, principal: Admin, body: ZoneCreate, response: Response) -> ZoneRead:
    """Add a zone to a floor (admins); gateways join it through their `zone_id`."""
    zone = await service.create_zone(session, body)
    response.headers["Location"] = f"/api/v1/zones/{zone.id}"
    return ZoneRead.model_validate(zone)


@router.get("/{zone_id}")
async def get_zone(session: Session, principal: Viewer, zone_id: ZoneId) -> ZoneRead:
    return ZoneRead.model_validate(await service.get_zone(session, zone_id))


@router.patch(
    "/{zone_id}",
    responses={409: {"description": "name taken on the floor, or a polygon for a floor without a plan"}},
)
async def update_zone(session: Session, principal: Admin, zone_id: ZoneId, body: ZoneUpdate) -> ZoneRead:
    """Change a zone's name, description, restriction or polygon (admins); null clears the polygon."""
    return ZoneRead.model_validate(await service.update_zone(session, zone_id, body.changes()))


@router.delete("/{zone_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_zone(session: Session, principal: Admin, zone_id: ZoneId) -> None:
    """Delete a zone (admins); its gateways stay, without a zone."""
    await service.delete_zone(session, zone_id)
