"""Queries of floor plans. The image column is deferred: lists and metadata never read it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from mirante.db import paginate_scalars
from rtls_cambus.buildings.models import Floor
from rtls_cambus.floor_plans.models import FloorPlan


@dataclass(frozen=True)
class PlanFilters:
    floor_id: int | None = None
    building_id: int | None = None


async def list_plans(
    session: AsyncSession, filters: PlanFilters, *, offset: int, limit: int
) -> tuple[Sequence[FloorPlan], int]:
    query = select(FloorPlan).order_by(FloorPlan.floor_id)
    if filters.floor_id is not None:
        query = query.where(FloorPlan.floor_id == filters.floor_id)
    if filters.building_id is not None:
        query = query.join(Floor, Floor.id == FloorPlan.floor_id).where(Floor.building_id == filters.building_id)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_plan(session: AsyncSession, plan_id: int, *, with_image: bool = False) -> FloorPlan | None:
    query = select(FloorPlan).where(FloorPlan.id == plan_id)
    if with_image:
        query = query.options(undefer(FloorPlan.image))
    return await session.scalar(query)


async def plan_of_floor(session: AsyncSession, floor_id: int) -> FloorPlan | None:
    return await session.scalar(select(FloorPlan).where(FloorPlan.floor_id == floor_id))
