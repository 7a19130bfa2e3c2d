"""HTTP endpoints of floor plans: `/api/v1/floor-plans[...]`.

Every signed-in caller reads the metadata and the image; admins upload, change and delete. The image is served
with the type its magic bytes gave, `nosniff`, a sandboxing CSP and an ETag, so it can be cached and never runs
as a page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile, status

from mirante.db import Session
from mirante.types import Id64, Text
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import Admin, AppSettings, Viewer
from rtls_cambus.fields import BuildingFilter, FloorFilter
from rtls_cambus.floor_plans import service
from rtls_cambus.floor_plans.errors import ImageTooLargeError
from rtls_cambus.floor_plans.repository import PlanFilters
from rtls_cambus.floor_plans.schemas import Coordinate, FloorPlanRead, FloorPlanUpdate, PlanId, Scale
from rtls_cambus.floor_plans.service import ImageLimits

FLOOR_PLANS_PATH = "/api/v1/floor-plans"

router = APIRouter(prefix=FLOOR_PLANS_PATH, tags=["floor plans"])

_IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-cache",
    "Content-Disposition": "inline",
}


@router.get("")
async def list_floor_plans(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    floor_id: FloorFilter = None,
    building_id: BuildingFilter = None,
) -> Page[FloorPlanRead]:
    """Floor plans (without their images), by floor or building."""
    filters = PlanFilters(floor_id=floor_id, building_id=building_id)
    found, count = await service.list_plans(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([FloorPlanRead.model_validate(plan) for plan in found], count)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "no floor `floor_id`"},
        409: {"description": "the floor has a plan already"},
        413: {"description": "the image is too large"},
        415: {"description": "not a PNG or JPEG (SVG is refused)"},
        422: {"description": "pixel dimensions out of bounds"},
    },
)
async def upload_floor_plan(
    session: Session,
    principal: Admin,
    settings: AppSettings,
    response: Response,
    floor_id: Annotated[Id64, Form(description="the floor this plan draws")],
    image: Annotated[UploadFile, File(description="PNG or JPEG; the type is read from the content")],
    scale_px_per_m: Annotated[Scale, Form()],
    origin_x_px: Annotated[Coordinate, Form()] = 0.0,
    origin_y_px: Annotated[Coordinate, Form()] = 0.0,
    name: Annotated[Text | None, Form(max_length=200, description="at most 200 characters")] = None,
) -> FloorPlanRead:
    """Upload a floor's plan (admins), with its scale (pixels per metre) and the pixel of (0 m, 0 m)."""
    limit = settings.floor_plan_max_bytes
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise ImageTooLargeError(limit)
    limits = ImageLimits(limit, settings.floor_plan_max_side_px, settings.floor_plan_max_pixels)
    values = {
        "scale_px_per_m": scale_px_per_m,
        "origin_x_px": origin_x_px,
        "origin_y_px": origin_y_px,
        "name": name.strip() if name else None,
    }
    plan = await service.create_plan(session, floor_id=floor_id, data=data, limits=limits, values=values)
    response.headers["Location"] = f"{FLOOR_PLANS_PATH}/{plan.id}"
    return FloorPlanRead.model_validate(plan)


@router.get("/{plan_id}")
async def get_floor_plan(session: Session, principal: Viewer, plan_id: PlanId) -> FloorPlanRead:
    return FloorPlanRead.model_validate(await service.get_plan(session, plan_id))


@router.get(
    "/{plan_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 304: {"description": "unchanged"}},
)
async def get_floor_plan_image(
    session: Session,
    principal: Viewer,
    plan_id: PlanId,
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    """The plan's image, to signed-in callers only; `If-None-Match` with the ETag answers 304."""
    plan = await service.get_plan(session, plan_id, with_image=True)
    etag = f'"{plan.sha256}"'
    headers = {**_IMAGE_HEADERS, "ETag": etag}
    if if_none_match is not None and {"*", etag} & {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=plan.image, media_type=plan.content_type, headers=headers)


@router.patch("/{plan_id}")
async def update_floor_plan(
    session: Session, principal: Admin, plan_id: PlanId, body: FloorPlanUpdate
) -> FloorPlanRead:
    """Change a plan's name, scale or origin (admins). To change the image, delete the plan and upload anew."""
    return FloorPlanRead.model_validate(await service.update_plan(session, plan_id, body.changes()))


@router.delete("/{plan_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_floor_plan(session: Session, principal: Admin, plan_id: PlanId) -> None:
    """Delete a plan (admins). Zone polygons and gateway positions stay, in the old plan's pixels."""
    await service.delete_plan(session, plan_id)
