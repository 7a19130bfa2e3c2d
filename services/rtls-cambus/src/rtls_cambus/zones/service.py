"""Zones: list, read, create, change, delete. Runs in the caller's transaction (flush only).

Deleting a zone leaves its gateways in place without a zone (users remove a zone to redraw the floor, not to
remove hardware).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.errors import referenced
from rtls_cambus import rows
from rtls_cambus.buildings.service import get_floor
from rtls_cambus.floor_plans.service import bounds_of_floor
from rtls_cambus.zones import repository
from rtls_cambus.zones.errors import PlanRequiredError, PolygonError, ZoneExistsError, ZoneNotFoundError
from rtls_cambus.zones.geometry import polygon_problem
from rtls_cambus.zones.models import Zone
from rtls_cambus.zones.repository import ZoneFilters
from rtls_cambus.zones.schemas import ZoneCreate


async def list_zones(session: AsyncSession, filters: ZoneFilters, *, offset: int, limit: int) -> tuple[list[Zone], int]:
    found, count = await repository.list_zones(session, filters, offset=offset, limit=limit)
    return list(found), count


async def get_zone(session: AsyncSession, zone_id: int) -> Zone:
    zone = await repository.get_zone(session, zone_id)
    if zone is None:
        raise ZoneNotFoundError(zone_id)
    return zone


async def _checked_polygon(
    session: AsyncSession, floor_id: int, polygon: Sequence[tuple[float, float]] | None
) -> list[list[float]] | None:
    if polygon is None:
        return None
    bounds = await bounds_of_floor(session, floor_id)
    if bounds is None:
        raise PlanRequiredError(floor_id, "a polygon")
    if problem := polygon_problem(polygon, bounds.width, bounds.height):
        raise PolygonError(problem)
    return [[x, y] for x, y in polygon]


async def create_zone(session: AsyncSession, body: ZoneCreate) -> Zone:
    await referenced(get_floor(session, body.floor_id), "floor_id")
    values = rows.column_values(body.model_dump(exclude={"polygon"}))
    zone = Zone(**values, polygon=await _checked_polygon(session, body.floor_id, body.polygon))
    if await rows.add(session, zone):
        raise ZoneExistsError(body.floor_id, body.name)
    await session.refresh(zone)
    return zone


async def update_zone(session: AsyncSession, zone_id: int, changes: dict[str, Any]) -> Zone:
    zone = await get_zone(session, zone_id)
    if "polygon" in changes:
        changes["polygon"] = await _checked_polygon(session, zone.floor_id, changes["polygon"])
    if await rows.change(session, zone, changes):
        raise ZoneExistsError(zone.floor_id, changes.get("name", zone.name))
    await session.refresh(zone)
    return zone


async def delete_zone(session: AsyncSession, zone_id: int) -> None:
    zone = await get_zone(session, zone_id)
    await rows.remove(session, zone)
