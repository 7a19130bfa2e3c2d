"""Orchestration: `/api/v1/orchestrator/` (operators distribute; viewers read the queue), and the moves of an
inspection that involve its machine, `/api/v1/inspections/{id}/send/` and `/cancel/` (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Depends, Query, Response, status

from mirante.db import Session
from mirante.types import Int32
from mirante.web.routing import SlashRouter
from vision_orchestrator.deps import USER_RATE_LIMITED, AppSettings, Operator, Viewer, actor_of
from vision_orchestrator.dispatch import service
from vision_orchestrator.dispatch.dispatcher import Dispatcher
from vision_orchestrator.dispatch.schemas import DispatchResult, DistributeRequest, QueueView, SendRequest
from vision_orchestrator.identifiers import InspectionIdPath
from vision_orchestrator.inspections.schemas import CancelRequest, InspectionDetail

router = SlashRouter(prefix="/api/v1/orchestrator", tags=["orchestrator"], responses=USER_RATE_LIMITED)
inspection_moves = SlashRouter(prefix="/api/v1/inspections", tags=["inspections"], responses=USER_RATE_LIMITED)

DispatcherDep = Annotated[Dispatcher, Depends(service.dispatcher_of)]


@router.post(
    "/distribute/",
    responses={
        202: {"description": "the chosen machine did not take it; it is pending again and will be retried"},
        404: {
            "description": "`inspection_id`, `target_machine_id` or one of `preferred_machines` names nothing "
            "(`details.field` names the field)"
        },
        409: {"description": "the inspection is not pending, or no machine can take it now (the reason says why)"},
    },
)
async def distribute(
    session: Session, principal: Operator, dispatcher: DispatcherDep, body: DistributeRequest, response: Response
) -> DispatchResult:
    """Choose a machine for a pending inspection with a strategy (`load_balanced`: lowest load ratio;
    `nearest`: same line, then location; `specialized`: fewest other types, best success rate for this type),
    preferred machines first, and give it the inspection (operators)."""
    result = await service.distribute(dispatcher, session, body, actor_of(principal))
    if not result.delivered:
        response.status_code = status.HTTP_202_ACCEPTED
    return result


@router.get("/queue/")
async def get_queue(
    session: Session,
    principal: Viewer,
    settings: AppSettings,
    limit: Annotated[Int32, Query(ge=1, le=1000, description="pending inspections listed, first in line first")] = 100,
) -> QueueView:
    """Pending inspections by priority then age with an estimated wait (from measured processing times and free
    capacity), and each machine's assignments."""
    return await service.queue(session, settings, limit)


@inspection_moves.post(
    "/{inspection_id}/cancel/", responses={409: {"description": "the inspection has finished already"}}
)
async def cancel_inspection(
    session: Session,
    principal: Operator,
    dispatcher: DispatcherDep,
    inspection_id: InspectionIdPath,
    background: BackgroundTasks,
    body: CancelRequest | None = None,
) -> InspectionDetail:
    """Cancel an inspection that has not finished (operators); a machine holding it gets its slot back and is
    told to stop (after the answer, best effort: the dispatcher keeps telling it until it has heard)."""
    cancelled, machine_id = await service.cancel(session, inspection_id, actor_of(principal), body)
    if machine_id is not None:
        # After the response, hence after the commit that recorded the drop owed.
        background.add_task(dispatcher.settle_drops, machine_id)
    return cancelled


@inspection_moves.post(
    "/{inspection_id}/send/",
    responses={
        202: {"description": "the machine cannot take it now; it stays pending for that machine, retried"},
        404: {"description": "no such inspection, or `target_machine_id` names no machine (`details.field`)"},
        409: {
            "description": "the inspection is not pending, or the machine does not declare its type "
            "(`machine_lacks_type`)"
        },
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
    result = await service.send(dispatcher, session, inspection_id, body, actor_of(principal))
    if not result.delivered:
        response.status_code = status.HTTP_202_ACCEPTED
    return result
