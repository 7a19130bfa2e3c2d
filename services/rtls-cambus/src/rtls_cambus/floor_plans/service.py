"""Floor plans: upload with checks, metadata, the image itself. Runs in the caller's transaction (flush only)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.errors import referenced
from rtls_cambus import rows
from rtls_cambus.buildings.service import get_floor
from rtls_cambus.floor_plans import repository
from rtls_cambus.floor_plans.errors import (
    FloorHasPlanError,
    FloorPlanNotFoundError,
    ImageDimensionsError,
    ImageTooLargeError,
    ImageTypeError,
)
from rtls_cambus.floor_plans.images import ImageRefusedError, inspect_image
from rtls_cambus.floor_plans.models import FloorPlan
from rtls_cambus.floor_plans.repository import PlanFilters


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_side: int
    max_pixels: int


@dataclass(frozen=True, slots=True)
class PlanBounds:
    """The pixel size of a floor's plan: what polygons and gateway positions must fall within."""

    width: int
    height: int


async def list_plans(
    session: AsyncSession, filters: PlanFilters, *, offset: int, limit: int
) -> tuple[list[FloorPlan], int]:
    found, count = await repository.list_plans(session, filters, offset=offset, limit=limit)
    return list(found), count


async def get_plan(session: AsyncSession, plan_id: int, *, with_image: bool = False) -> FloorPlan:
    plan = await repository.get_plan(session, plan_id, with_image=with_image)
    if plan is None:
        raise FloorPlanNotFoundError(plan_id)
    return plan


async def bounds_of_floor(session: AsyncSession, floor_id: int) -> PlanBounds | None:
    plan = await repository.plan_of_floor(session, floor_id)
    return None if plan is None else PlanBounds(plan.width_px, plan.height_px)


def check_image(data: bytes, limits: ImageLimits) -> tuple[str, int, int]:
    """The content type, width and height of an acceptable plan image; 413, 415 or 422 otherwise."""
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(limits.max_bytes)
    try:
        info = inspect_image(data)
    except ImageRefusedError as refused:
        raise ImageTypeError(str(refused)) from None
    sides_ok = 1 <= info.width <= limits.max_side and 1 <= info.height <= limits.max_side
    if not sides_ok or info.width * info.height > limits.max_pixels:
        raise ImageDimensionsError(info.width, info.height, limits.max_side, limits.max_pixels)
    return info.content_type, info.width, info.height


async def create_plan(
    session: AsyncSession, *, floor_id: int, data: bytes, limits: ImageLimits, values: dict[str, Any]
) -> FloorPlan:
    """Store a floor's plan after checking the image; 404 without the floor, 409 when it has a plan already."""
    await referenced(get_floor(session, floor_id), "floor_id")
    content_type, width, height = check_image(data, limits)
    plan = FloorPlan(
        floor_id=floor_id,
        content_type=content_type,
        width_px=width,
        height_px=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        image=data,
        **rows.column_values(values),
    )
    if await rows.add(session, plan):
        raise FloorHasPlanError(floor_id)
    await session.refresh(plan, attribute_names=["created_at", "updated_at"])
    return plan


async def update_plan(session: AsyncSession, plan_id: int, changes: dict[str, Any]) -> FloorPlan:
    plan = await get_plan(session, plan_id)
    await rows.change(session, plan, changes)
    await session.refresh(plan, attribute_names=["updated_at"])
    return plan


async def delete_plan(session: AsyncSession, plan_id: int) -> None:
    plan = await get_plan(session, plan_id)
    await rows.remove(session, plan)
