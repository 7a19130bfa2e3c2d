"""Queries of zones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.buildings.models import Floor
from rtls_cambus.rows import like_pattern
from rtls_cambus.zones.models import Zone


@dataclass(frozen=True)
class ZoneFilters:
    floor_id: int | None = None
    building_id: int | None = None
    restricted: bool | None = None
    search: str | None = None


async def list_zones(
    session: AsyncSession, filters: ZoneFilters, *, offset: int, limit: int
) -> tuple[Sequence[Zone], int]:
    query = select(Zone).order_by(Zone.floor_id, Zone.name, Zone.id)
    if filters.floor_id is not None:
        query = query.where(Zone.floor_id == filters.floor_id)
    if filters.building_id is not None:
        query = query.join(Floor, Floor.id == Zone.floor_id).where(Floor.building_id == filters.building_id)
    if filters.restricted is not None:
        query = query.where(Zone.restricted.is_(filters.restricted))
    if filters.search:
        query = query.where(Zone.name.ilike(like_pattern(filters.search), escape="\\"))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_zone(session: AsyncSession, zone_id: int) -> Zone | None:
    return await session.get(Zone, zone_id)
