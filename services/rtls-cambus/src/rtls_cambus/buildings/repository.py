"""Queries of buildings and floors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.rows import like_pattern


async def list_buildings(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[Sequence[Building], int]:
    query = select(Building).order_by(Building.name, Building.id)
    if search:
        pattern = like_pattern(search)
        query = query.where(or_(Building.name.ilike(pattern, escape="\\"), Building.code.ilike(pattern, escape="\\")))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_building(session: AsyncSession, building_id: int) -> Building | None:
    return await session.get(Building, building_id)


@dataclass(frozen=True)
class FloorFilters:
    building_id: int | None = None
    level: int | None = None
    search: str | None = None


async def list_floors(
    session: AsyncSession, filters: FloorFilters, *, offset: int, limit: int
) -> tuple[Sequence[Floor], int]:
    query = select(Floor).order_by(Floor.building_id, Floor.level, Floor.id)
    if filters.building_id is not None:
        query = query.where(Floor.building_id == filters.building_id)
    if filters.level is not None:
        query = query.where(Floor.level == filters.level)
    if filters.search:
        query = query.where(Floor.name.ilike(like_pattern(filters.search), escape="\\"))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_floor(session: AsyncSession, floor_id: int) -> Floor | None:
    return await session.get(Floor, floor_id)
