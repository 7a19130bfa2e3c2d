"""The dashboard: the counts of the fleet and of the inspections, the system's health, recent performance."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.dashboard import repository
from vision_orchestrator.dashboard.health import Signals, judge
from vision_orchestrator.dashboard.schemas import Dashboard, PerformanceMetrics
from vision_orchestrator.lifecycle import ON_A_MACHINE, InspectionStatus


async def dashboard(session: AsyncSession, window: timedelta) -> Dashboard:
    """The figures at this moment; `performance_metrics` cover the inspections finished in the last `window`."""
    fleet = await repository.fleet(session)
    counts = await repository.inspections(session)
    recent = await repository.recent_work(session, window)
    finished = recent.completed + recent.failed
    oldest = counts.oldest_pending_queued_at
    verdict = judge(
        Signals(
            machines_in_service=fleet.in_service,
            online_in_service=fleet.online_in_service,
            finished=finished,
            failed=recent.failed,
            oldest_pending_seconds=None if oldest is None else max((counts.now - oldest).total_seconds(), 0.0),
        )
    )
    by_status = counts.by_status
    hours = window.total_seconds() / 3600
    return Dashboard(
        total_machines=fleet.total,
        online_machines=fleet.online,
        maintenance_machines=fleet.maintenance,
        total_inspections=counts.total,
        pending_inspections=by_status[InspectionStatus.pending],
        processing_inspections=sum(by_status[status] for status in ON_A_MACHINE),
        completed_inspections=by_status[InspectionStatus.completed],
        failed_inspections=by_status[InspectionStatus.failed],
        cancelled_inspections=by_status[InspectionStatus.cancelled],
        oldest_pending_queued_at=oldest,
        system_health=verdict.health,
        health_reasons=verdict.reasons,
        window_minutes=round(window.total_seconds() / 60),
        performance_metrics=PerformanceMetrics(
            average_processing_time=None
            if recent.average_processing_seconds is None
            else round(recent.average_processing_seconds, 3),
            throughput_per_hour=round(finished / hours, 2),
            success_rate=None if finished == 0 else round(100 * recent.completed / finished, 1),
        ),
    )
