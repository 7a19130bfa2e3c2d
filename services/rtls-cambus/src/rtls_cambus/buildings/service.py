"""Buildings and floors: list, read, create, change, delete. Runs in the caller's transaction (flush only).

A building with floors or devices, and a floor with zones or devices, cannot be deleted (409): those hold
positions and history people still need, so removing them must be a decision of its own. A floor's plan is
part of the floor and goes with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.errors import referenced
from rtls_cambus import rows
from rtls_cambus.buildings import repository
from rtls_cambus.buildings.errors import (
    BuildingExistsError,
    BuildingInUseError,
    BuildingNotFoundError,
    FloorExistsError,
    FloorInUseError,
    FloorNotFoundError,
)
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.buildings.repository import FloorFilters
from rtls_cambus.buildings.schemas import BuildingCreate, FloorCreate

_BUILDING_REFERENCES = {
    "fk_floors_building_id_buildings": "floors",
    "fk_devices_building_id_buildings": "devices",
}
_FLOOR_REFERENCES = {
    "fk_zones_floor_id_floors": "zones",
    "fk_devices_floor_id_floors": "devices",
}


async def list_buildings(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[list[Building], int]:
    found, count = await repository.list_buildings(session, search, offset=offset, limit=limit)
    return list(found), count


async def get_building(session: AsyncSession, building_id: int) -> Building:
    building = await repository.get_building(session, building_id)
    if building is None:
        raise BuildingNotFoundError(building_id)
    return building


def _building_conflict(constraint: str) -> BuildingExistsError:
    return BuildingExistsError("code" if constraint == "uq_buildings_code" else "name")


async def create_building(session: AsyncSession, body: BuildingCreate) -> Building:
    building = Building(**rows.column_values(body.model_dump()))
    if constraint := await rows.add(session, building):
        raise _building_conflict(constraint)
    await session.refresh(building)
    return building


async def update_building(session: AsyncSession, building_id: int, changes: dict[str, Any]) -> Building:
    building = await get_building(session, building_id)
    if constraint := await rows.change(session, building, changes):
        raise _building_conflict(constraint)
    await session.refresh(building)
    return building


async def delete_building(session: AsyncSession, building_id: int) -> None:
    building = await get_building(session, building_id)
    if constraint := await rows.remove(session, building):
        raise BuildingInUseError(building_id, _BUILDING_REFERENCES.get(constraint, "references"))


async def list_floors(
    session: AsyncSession, filters: FloorFilters, *, offset: int, limit: int
) -> tuple[list[Floor], int]:
    found, count = await repository.list_floors(session, filters, offset=offset, limit=limit)
    return list(found), count


async def get_floor(session: AsyncSession, floor_id: int) -> Floor:
    floor = await repository.get_floor(session, floor_id)
    if floor is None:
        raise FloorNotFoundError(floor_id)
    return floor


async def create_floor(session: AsyncSession, body: FloorCreate) -> Floor:
    await referenced(get_building(session, body.building_id), "building_id")
    floor = Floor(**rows.column_values(body.model_dump()))
    if await rows.add(session, floor):
        raise FloorExistsError(body.building_id, body.level)
    await session.refresh(floor)
    return floor


async def update_floor(session: AsyncSession, floor_id: int, changes: dict[str, Any]) -> Floor:
    floor = await get_floor(session, floor_id)
    if await rows.change(session, floor, changes):
        raise FloorExistsError(floor.building_id, changes.get("level", floor.level))
    await session.refresh(floor)
    return floor


async def delete_floor(session: AsyncSession, floor_id: int) -> None:
    floor = await get_floor(session, floor_id)
    if constraint := await rows.remove(session, floor):
        raise FloorInUseError(floor_id, _FLOOR_REFERENCES.get(constraint, "references"))
