"""Machine webhooks: `/api/v1/webhooks/heartbeat/`, `/status/` and `/results/`. The machine authenticates with
its credential or its Standard Webhooks signature (`auth.reporting_machine`); the contract never rate-limits
these calls."""

from __future__ import annotations

from typing import Any

from mirante.db import Session
from mirante.web.routing import SlashRouter
from vision_orchestrator.webhooks import service
from vision_orchestrator.webhooks.auth import ReportingMachine
from vision_orchestrator.webhooks.schemas import (
    HeartbeatReport,
    HeartbeatTaken,
    ResultReport,
    ResultTaken,
    StatusReport,
    StatusTaken,
)

router = SlashRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "neither a valid machine credential nor a valid signature"},
    403: {"description": "`machine_id` is not the calling machine"},
}
RESULT_REFUSALS: dict[int | str, dict[str, Any]] = {
    **REFUSALS,
    403: {"description": "`machine_id` is not the caller, or the inspection was never assigned to it"},
    404: {"description": "no such inspection"},
    409: {"description": "the inspection was cancelled, or `attempt` is not its current assignment"},
}


@router.post("/heartbeat/", responses=REFUSALS)
async def heartbeat(session: Session, machine: ReportingMachine, body: HeartbeatReport) -> HeartbeatTaken:
    """A machine's heartbeat: stored in the time series; it keeps the machine online, or brings it back."""
    return await service.take_heartbeat(session, machine, body)


@router.post("/status/", responses=REFUSALS)
async def status_update(session: Session, machine: ReportingMachine, body: StatusReport) -> StatusTaken:
    """A machine's status: `busy` at capacity, `online` below it, `offline` on a clean shutdown. An offline
    machine's report changes nothing: its next heartbeat brings it back."""
    return await service.take_status(session, machine, body)


@router.post("/results/", responses=RESULT_REFUSALS)
async def results(session: Session, machine: ReportingMachine, body: ResultReport) -> ResultTaken:
    """The result of an inspection assigned to the machine. The same inspection and `attempt` delivered again
    answers the same, with `duplicate: true`, and changes nothing."""
    return await service.take_result(session, machine, body)
