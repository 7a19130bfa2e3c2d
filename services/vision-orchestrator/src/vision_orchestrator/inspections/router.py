"""Inspections: `/api/v1/inspections/`. Viewers read; operators create, change (while pending) and cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Query, Request, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from mirante.web.routing import SlashRouter
from vision_orchestrator.deps import Operator, Viewer, actor_of
from vision_orchestrator.dispatch import service as dispatch
from vision_orchestrator.dispatch.dispatcher import Dispatcher
from vision_orchestrator.dispatch.schemas import DispatchResult, SendRequest
from vision_orchestrator.identifiers import InspectionIdPath
from vision_orchestrator.inspections import service
from vision_orchestrator.inspections.schemas import (
    CancelRequest,
    InspectionDetail,
    InspectionFilterParams,
    InspectionRead,
    InspectionSort,
    InspectionUpdate,
    InspectionWrite,
)

router = SlashRouter(prefix="/api/v1/inspections", tags=["inspections"])

DispatcherDep = Annotated[Dispatcher, Depends(dispatch.dispatcher_of)]

NOT_PENDING: dict[int | str, dict[str, Any]] = {409: {"description": "the inspection is no longer pending"}}


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


@router.post("/", status_code=status.HTTP_201_CREATED)
async def create_inspection(
    session: Session, principal: Operator, body: InspectionWrite, response: Response
) -> InspectionDetail:
    """Queue an inspection (operators); it starts pending. 422 names the tool or connection at fault in an
    invalid pipeline, an unknown type, or a target machine that is unknown or lacks the type."""
    created = await service.create_inspection(session, body.model_dump(by_alias=True), actor_of(principal))
    response.headers["Location"] = f"/api/v1/inspections/{created.id}/"
    return created


@router.get("/{inspection_id}/")
async def get_inspection(session: Session, principal: Viewer, inspection_id: InspectionIdPath) -> InspectionDetail:
    """One inspection with its status history (oldest first) and results."""
    return await service.get_inspection(session, inspection_id)


@router.put("/{inspection_id}/", responses=NOT_PENDING)
async def replace_inspection(
    session: Session, principal: Operator, inspection_id: InspectionIdPath, body: InspectionWrite
) -> InspectionDetail:
    """Replace every writable field (operators), only while pending (409 otherwise)."""
    return await service.update_inspection(session, inspection_id, body.model_dump(by_alias=True))


@router.patch("/{inspection_id}/", responses=NOT_PENDING)
async def update_inspection(
    session: Session, principal: Operator, inspection_id: InspectionIdPath, body: InspectionUpdate
) -> InspectionDetail:
    """Change some fields (operators), only while pending (409 otherwise)."""
    return await service.update_inspection(session, inspection_id, body.changes())


@router.post("/{inspection_id}/cancel/", responses={409: {"description": "the inspection has finished already"}})
async def cancel_inspection(
    session: Session,
    principal: Operator,
    inspection_id: InspectionIdPath,
    request: Request,
    background: BackgroundTasks,
    body: CancelRequest | None = None,
) -> InspectionDetail:
    """Cancel an inspection that has not finished (operators); a machine holding it gets its slot back and is
    told to stop (after the answer, best effort: the dispatcher keeps telling it until it has heard)."""
    cancelled = await service.cancel_inspection(
        session, inspection_id, actor_of(principal), body.reason if body else None
    )
    machine_id = cancelled.history[-1].machine_id if cancelled.history else None
    if machine_id is not None:
        # After the response, hence after the commit that recorded the drop owed.
        background.add_task(dispatch.dispatcher_of(request).settle_drops, machine_id)
    return cancelled


@router.post(
    "/{inspection_id}/send/",
    responses={
        202: {"description": "the machine cannot take it now; it stays pending for that machine, retried"},
        409: {"description": "the inspection is not pending"},
        422: {"description": "the machine does not exist or does not run the inspection's type"},
    },
)
async def send_inspection(
    session: Session,
    principal: Operator,
    dispatcher: DispatcherDep,
    inspection_id: InspectionIdPath,
    body: SendRequest,
    response: Response,
) -> DispatchResult:
    """Give a pending inspection to a machine (operators): it becomes the inspection's target, assigned and
    posted to the machine's API. When the machine is busy, unreachable or refuses, the inspection stays
    pending for it with the reason, and the dispatcher tries again with backoff (202)."""
    result = await dispatch.send(dispatcher, session, inspection_id, body, actor_of(principal))
    if not result.delivered:
        response.status_code = status.HTTP_202_ACCEPTED
    return result
