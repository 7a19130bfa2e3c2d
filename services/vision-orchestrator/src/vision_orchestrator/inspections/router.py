"""Inspections: `/api/v1/inspections/`. Viewers read; operators create and change them (while pending).

The moves that involve a machine, `/{id}/send/` and `/{id}/cancel/`, are served by `dispatch.router` under the
same prefix: dispatch builds on inspections, never the other way round."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from mirante.web.routing import SlashRouter
from vision_orchestrator.deps import USER_RATE_LIMITED, Operator, Viewer, actor_of
from vision_orchestrator.identifiers import InspectionIdPath
from vision_orchestrator.inspections import service
from vision_orchestrator.inspections.schemas import (
    InspectionDetail,
    InspectionFilterParams,
    InspectionRead,
    InspectionSort,
    InspectionUpdate,
    InspectionWrite,
)

router = SlashRouter(prefix="/api/v1/inspections", tags=["inspections"], responses=USER_RATE_LIMITED)

_MISSING_REFERENCE = (
    "`inspection_type` is not in the catalogue (`inspection_type_not_found`) or `target_machine_id` names no machine "
    "(`machine_not_found`); `details.field` names the field"
)
_TARGET_LACKS_TYPE = "the target machine does not declare the inspection's type (`machine_lacks_type`)"
CREATE_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": _MISSING_REFERENCE},
    409: {"description": _TARGET_LACKS_TYPE},
}
CHANGE_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": f"no such inspection, or {_MISSING_REFERENCE}"},
    409: {"description": f"the inspection is no longer pending, or {_TARGET_LACKS_TYPE}"},
}


@router.get("/")
async def list_inspections(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    filters: InspectionFilterParams,
    sort: Annotated[
        InspectionSort, Query(description="`-created_at` newest first, or `priority` in queue order")
    ] = "-created_at",
) -> Page[InspectionRead]:
    """Inspections, newest first unless sorted otherwise, filtered by status, machine, type and creation time."""
    inspections, count = await service.list_inspections(
        session, filters, sort=sort, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(inspections, count)


@router.post("/", status_code=status.HTTP_201_CREATED, responses=CREATE_REFUSALS)
async def create_inspection(
    session: Session, principal: Operator, body: InspectionWrite, response: Response
) -> InspectionDetail:
    """Queue an inspection (operators); it starts pending. 422 names the tool or connection at fault in an
    invalid pipeline; 404 names a type or target machine that does not exist; 409 when the target lacks the
    type."""
    created = await service.create_inspection(session, body.model_dump(by_alias=True), actor_of(principal))
    response.headers["Location"] = f"/api/v1/inspections/{created.id}/"
    return created


@router.get("/{inspection_id}/")
async def get_inspection(session: Session, principal: Viewer, inspection_id: InspectionIdPath) -> InspectionDetail:
    """One inspection with its status history (oldest first) and results."""
    return await service.get_inspection(session, inspection_id)


@router.put("/{inspection_id}/", responses=CHANGE_REFUSALS)
async def replace_inspection(
    session: Session, principal: Operator, inspection_id: InspectionIdPath, body: InspectionWrite
) -> InspectionDetail:
    """Replace every writable field (operators), only while pending (409 otherwise)."""
    return await service.update_inspection(session, inspection_id, body.model_dump(by_alias=True))


@router.patch("/{inspection_id}/", responses=CHANGE_REFUSALS)
async def update_inspection(
    session: Session, principal: Operator, inspection_id: InspectionIdPath, body: InspectionUpdate
) -> InspectionDetail:
    """Change some fields (operators), only while pending (409 otherwise)."""
    return await service.update_inspection(session, inspection_id, body.changes())
