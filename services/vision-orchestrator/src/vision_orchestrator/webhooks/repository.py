"""Queries of machine results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.tables import InspectionResult, InspectionStatusChange


async def result_by_key(session: AsyncSession, inspection_id: str, key: str) -> InspectionResult | None:
    statement = select(InspectionResult).where(
        InspectionResult.inspection_id == inspection_id, InspectionResult.idempotency_key == key
    )
    return (await session.scalars(statement)).one_or_none()


async def was_assigned_to(session: AsyncSession, inspection_id: str, machine_id: str) -> bool:
    """Whether the inspection was ever assigned to the machine (its history says so)."""
    statement = select(InspectionStatusChange.id).where(
        InspectionStatusChange.inspection_id == inspection_id,
        InspectionStatusChange.machine_id == machine_id,
        InspectionStatusChange.to_status == InspectionStatus.assigned.value,
    )
    return (await session.scalar(statement.limit(1))) is not None


async def add_result(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(
        insert(InspectionResult)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[InspectionResult.inspection_id, InspectionResult.idempotency_key])
    )
