"""Orchestration: `/api/v1/orchestrator/`. Operators distribute; viewers read the queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Response, status

from mirante.db import Session
from mirante.types import Int32
from mirante.web.routing import SlashRouter
from vision_orchestrator.deps import AppSettings, Operator, Viewer, actor_of
from vision_orchestrator.dispatch import service
from vision_orchestrator.dispatch.dispatcher import Dispatcher
from vision_orchestrator.dispatch.schemas import DispatchResult, DistributeRequest, QueueView

router = SlashRouter(prefix="/api/v1/orchestrator", tags=["orchestrator"])

DispatcherDep = Annotated[Dispatcher, Depends(service.dispatcher_of)]


@router.post(
    "/distribute/",
    responses={
        202: {"description": "the chosen machine did not take it; it is pending again and will be retried"},
        404: {"description": "no such inspection"},
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
