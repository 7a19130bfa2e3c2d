"""A machine's status (its record and its last heartbeat) and its statistics over a window."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.heartbeats.repository import latest_heartbeat
from vision_orchestrator.machines import repository as machines
from vision_orchestrator.machines.errors import MachineNotFoundError
from vision_orchestrator.monitoring import repository
from vision_orchestrator.monitoring.schemas import (
    Bucket,
    Figures,
    MachineStatistics,
    MachineStatusRead,
    StatisticsWindow,
)
from vision_orchestrator.tables import Machine, MachineStatus

SUMMED = (
    "completed",
    "failed",
    "processing_sum",
    "processing_count",
    "busy_seconds",
    "seconds",
    "heartbeats",
    "cpu_sum",
    "cpu_count",
    "gpu_sum",
    "gpu_count",
)


async def _machine(session: AsyncSession, machine_id: str) -> Machine:
    machine = await machines.get_machine(session, machine_id)
    if machine is None:
        raise MachineNotFoundError(machine_id)
    return machine


async def machine_status(session: AsyncSession, machine_id: str) -> MachineStatusRead:
    machine = await _machine(session, machine_id)
    beat = await latest_heartbeat(session, machine_id)
    return MachineStatusRead(
        machine_id=machine.id,
        status=MachineStatus(machine.status),
        maintenance=machine.maintenance,
        last_heartbeat=machine.last_heartbeat,
        current_inspections=machine.current_inspections,
        max_concurrent_inspections=machine.max_concurrent_inspections,
        system_info=beat.system_info if beat else None,
        performance_metrics=beat.performance_metrics if beat else None,
    )


def _ratio(part: float, whole: float, scale: float = 1.0) -> float | None:
    return round(part / whole * scale, 3) if whole else None


def _figures(sums: dict[str, Any], capacity: int) -> dict[str, Any]:
    completed, failed = int(sums["completed"] or 0), int(sums["failed"] or 0)
    return {
        "inspections_completed": completed,
        "inspections_failed": failed,
        "average_processing_time": _ratio(float(sums["processing_sum"] or 0), int(sums["processing_count"] or 0)),
        "success_rate": _ratio(completed, completed + failed, 100),
        "utilization": _ratio(float(sums["busy_seconds"] or 0), capacity * float(sums["seconds"] or 0), 100),
        "heartbeats": int(sums["heartbeats"] or 0),
        "average_cpu_usage": _ratio(float(sums["cpu_sum"] or 0), int(sums["cpu_count"] or 0)),
        "average_gpu_usage": _ratio(float(sums["gpu_sum"] or 0), int(sums["gpu_count"] or 0)),
    }


async def machine_statistics(session: AsyncSession, machine_id: str, window: StatisticsWindow) -> MachineStatistics:
    """Figures over the window and per period within it. Utilisation divides by the machine's capacity now."""
    machine = await _machine(session, machine_id)
    capacity = machine.max_concurrent_inspections
    rows = await repository.bucket_sums(session, machine_id, window.period.value, window.start, window.end)
    totals = {name: sum(float(row[name] or 0) for row in rows) for name in SUMMED}
    return MachineStatistics(
        machine_id=machine_id,
        period=window.period,
        start_date=window.start,
        end_date=window.end,
        max_concurrent_inspections=capacity,
        totals=Figures(**_figures(totals, capacity)),
        series=[Bucket(start=row["bucket_start"], end=row["bucket_end"], **_figures(row, capacity)) for row in rows],
    )
