"""Machine reports: heartbeats and status reports (through `heartbeats.presence`) and results.

A result is keyed by its inspection and `attempt`: the first delivery moves the inspection to completed or
failed (a history row), frees the machine's slot, stores the result, queues `vision.inspection.completed|failed`
and announces the free slot; a retried delivery of the same key changes nothing and answers the same. Results
nobody wants any more are refused and logged: unknown inspection 404, cancelled 409, an attempt that is not
the current one (the inspection was given again, to this machine or another) 409, another machine's 403.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit
from vision_orchestrator.capacity import announce_capacity
from vision_orchestrator.heartbeats import presence
from vision_orchestrator.identifiers import SCHEMA, SOURCE
from vision_orchestrator.inspections import repository as inspections
from vision_orchestrator.inspections.service import transition
from vision_orchestrator.lifecycle import ON_A_MACHINE, InspectionStatus
from vision_orchestrator.tables import Machine, MachineStatus
from vision_orchestrator.webhooks import repository
from vision_orchestrator.webhooks.errors import (
    InspectionCancelledError,
    NotYourInspectionError,
    NotYourselfError,
    StaleAttemptError,
    UnknownInspectionError,
)
from vision_orchestrator.webhooks.schemas import (
    HeartbeatReport,
    HeartbeatTaken,
    ResultReport,
    ResultTaken,
    StatusReport,
    StatusTaken,
)

logger = logging.getLogger(__name__)

INSPECTION_COMPLETED: Final = "vision.inspection.completed"
INSPECTION_FAILED: Final = "vision.inspection.failed"


def _check_self(machine: Machine, claimed: str) -> None:
    if claimed != machine.id:
        logger.warning("machine %s reported as machine %s; refused", machine.id, claimed)
        raise NotYourselfError(machine.id, claimed)


async def take_heartbeat(session: AsyncSession, machine: Machine, report: HeartbeatReport) -> HeartbeatTaken:
    _check_self(machine, report.machine_id)
    received_at = await presence.record_heartbeat(
        session,
        machine.id,
        {
            "reported_at": report.timestamp,
            "status": report.status,
            "system_info": report.system_info.model_dump(exclude_none=True),
            "performance_metrics": report.performance_metrics.model_dump(exclude_none=True),
        },
    )
    return HeartbeatTaken(machine_id=machine.id, status=report.status, received_at=received_at)


async def take_status(session: AsyncSession, machine: Machine, report: StatusReport) -> StatusTaken:
    _check_self(machine, report.machine_id)
    status = await presence.record_status(session, machine.id, MachineStatus(report.status), report.current_inspections)
    return StatusTaken(machine_id=machine.id, status=status)


def _idempotency_key(attempt: int) -> str:
    return f"attempt-{attempt}"


def _processing_time(report: ResultReport) -> float | None:
    value = report.results.get("processing_time")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


async def take_result(session: AsyncSession, machine: Machine, report: ResultReport) -> ResultTaken:
    _check_self(machine, report.machine_id)
    inspection_id, attempt = report.inspection_id, report.attempt
    inspection = await inspections.get_inspection(session, inspection_id, for_update=True)
    if inspection is None:
        logger.warning("machine %s posted a result for unknown inspection %s", machine.id, inspection_id)
        raise UnknownInspectionError(inspection_id)
    key = _idempotency_key(attempt)
    earlier = await repository.result_by_key(session, inspection_id, key)
    if earlier is not None and earlier.machine_id == machine.id:
        logger.info("machine %s re-delivered the result of %s attempt %d", machine.id, inspection_id, attempt)
        return ResultTaken(inspection_id=inspection_id, status=earlier.status, attempt=attempt, duplicate=True)
    mine = inspection.assigned_machine_id == machine.id
    if not mine and not await repository.was_assigned_to(session, inspection_id, machine.id):
        logger.warning("machine %s posted a result for %s, not assigned to it; refused", machine.id, inspection_id)
        raise NotYourInspectionError(machine.id, inspection_id)
    status = InspectionStatus(inspection.status)
    if status is InspectionStatus.cancelled:
        logger.warning("machine %s posted a result for cancelled inspection %s; refused", machine.id, inspection_id)
        raise InspectionCancelledError(inspection_id)
    if not mine or attempt != inspection.lease or status not in ON_A_MACHINE:
        logger.warning(
            "machine %s posted attempt %d of %s, which is at attempt %d (%s) on %s; refused",
            machine.id,
            attempt,
            inspection_id,
            inspection.lease,
            status.value,
            inspection.assigned_machine_id,
        )
        raise StaleAttemptError(inspection_id, attempt, inspection.lease, status.value)
    target = InspectionStatus(report.status)
    await transition(
        session,
        inspection,
        target,
        actor=f"machine:{machine.id}",
        reason=report.error_message if target is InspectionStatus.failed else None,
    )
    if target is InspectionStatus.failed:
        await inspections.update_inspection(session, inspection_id, {"error_message": report.error_message})
    processing_time = _processing_time(report)
    await repository.add_result(
        session,
        {
            "inspection_id": inspection_id,
            "machine_id": machine.id,
            "idempotency_key": key,
            "lease": attempt,
            "status": target.value,
            "results": report.results,
            "error_message": report.error_message,
            "processing_time_seconds": processing_time,
            "reported_at": report.timestamp,
        },
    )
    await emit(
        session,
        SCHEMA,
        Event(
            source=SOURCE,
            type=INSPECTION_COMPLETED if target is InspectionStatus.completed else INSPECTION_FAILED,
            subject=f"inspection/{inspection_id}",
            data={
                "inspection_id": inspection_id,
                "machine_id": machine.id,
                "attempt": attempt,
                "inspection_type": inspection.inspection_type,
                "processing_time": processing_time,
                "error_message": report.error_message,
            },
        ),
    )
    await announce_capacity(session, machine.id)
    logger.info("inspection %s %s on machine %s (attempt %d)", inspection_id, target.value, machine.id, attempt)
    return ResultTaken(inspection_id=inspection_id, status=target.value, attempt=attempt, duplicate=False)
