"""The dashboard's aggregate queries: three statements, each one pass that counts, never loading rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Float, and_, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.tables import FINISHED_PREDICATE, Inspection, InspectionResult, Machine, MachineStatus


@dataclass(frozen=True)
class FleetCounts:
    total: int
    online: int
    maintenance: int
    in_service: int
    online_in_service: int


@dataclass(frozen=True)
class InspectionCounts:
    total: int
    by_status: dict[InspectionStatus, int]
    oldest_pending_queued_at: datetime | None
    now: datetime


@dataclass(frozen=True)
class RecentWork:
    completed: int
    failed: int
    average_processing_seconds: float | None


async def fleet(session: AsyncSession) -> FleetCounts:
    online = Machine.status != MachineStatus.offline.value
    in_service = Machine.maintenance.is_(False)
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(online),
                func.count().filter(Machine.maintenance.is_(True)),
                func.count().filter(in_service),
                func.count().filter(and_(online, in_service)),
            ).select_from(Machine)
        )
    ).one()
    return FleetCounts(*row)


async def inspections(session: AsyncSession) -> InspectionCounts:
    counts = [func.count().filter(Inspection.status == status.value) for status in InspectionStatus]
    row = (
        await session.execute(
            select(
                func.count(),
                func.min(Inspection.queued_at).filter(Inspection.status == InspectionStatus.pending.value),
                func.now(),
                *counts,
            ).select_from(Inspection)
        )
    ).one()
    total, oldest, now, *by_status = row
    return InspectionCounts(total, dict(zip(InspectionStatus, by_status, strict=True)), oldest, now)


async def recent_work(session: AsyncSession, window: timedelta) -> RecentWork:
    """What finished in the last `window`: completed and failed counts, and the average processing time of the
    completed ones (the machine's own figure from its latest result, else finished minus started)."""
    reported = (
        select(InspectionResult.processing_time_seconds)
        .where(InspectionResult.inspection_id == Inspection.id)
        .order_by(InspectionResult.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    measured = func.extract(
        "epoch", Inspection.finished_at - func.coalesce(Inspection.started_at, Inspection.assigned_at)
    )
    completed = Inspection.status == InspectionStatus.completed.value
    row = (
        await session.execute(
            select(
                func.count().filter(completed),
                func.count().filter(Inspection.status == InspectionStatus.failed.value),
                func.avg(cast(func.coalesce(reported, measured), Float)).filter(completed),
            ).where(
                text(FINISHED_PREDICATE),
                Inspection.finished_at >= func.now() - window,
            )
        )
    ).one()
    completed_count, failed_count, average = row
    return RecentWork(completed_count, failed_count, None if average is None else float(average))
