"""`/api/v1/machines/{id}/status/` and `/statistics/`, for viewers and up."""

from __future__ import annotations

from mirante.db import Session
from mirante.web.routing import SlashRouter
from vision_orchestrator.deps import USER_RATE_LIMITED, Viewer
from vision_orchestrator.identifiers import MachineIdPath
from vision_orchestrator.monitoring import service
from vision_orchestrator.monitoring.schemas import MachineStatistics, MachineStatusRead, StatisticsQuery

router = SlashRouter(prefix="/api/v1/machines", tags=["machines"], responses=USER_RATE_LIMITED)


@router.get("/{machine_id}/status/")
async def machine_status(session: Session, principal: Viewer, machine_id: MachineIdPath) -> MachineStatusRead:
    """The machine's status and load, and the system info and performance metrics of its last heartbeat."""
    return await service.machine_status(session, machine_id)


@router.get("/{machine_id}/statistics/")
async def machine_statistics(
    session: Session, principal: Viewer, machine_id: MachineIdPath, window: StatisticsQuery
) -> MachineStatistics:
    """Inspections completed and failed, average processing time, success rate, utilisation and heartbeat
    figures over `start_date`..`end_date`, in total and per `period`. Without dates: the last 24 hours by hour,
    7 days by day, 12 weeks by week, a year by month. 422 when start is not before end or the window holds
    more than 2,000 periods."""
    return await service.machine_statistics(session, machine_id, window)
