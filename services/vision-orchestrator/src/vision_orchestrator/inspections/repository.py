"""Queries of inspections, their status history and results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import UnaryExpression

from mirante.db import paginate_scalars
from vision_orchestrator.inspections.schemas import InspectionFilters
from vision_orchestrator.tables import Inspection, InspectionResult, InspectionStatusChange, Machine, MachineDrop

_SORTS: dict[str, tuple[UnaryExpression[Any] | InstrumentedAttribute[Any], ...]] = {
    "-created_at": (Inspection.created_at.desc(), Inspection.id.desc()),
    "created_at": (Inspection.created_at.asc(), Inspection.id.asc()),
    "priority": (Inspection.priority, Inspection.queued_at, Inspection.id),
}


async def list_inspections(
    session: AsyncSession, filters: InspectionFilters, *, sort: str, offset: int, limit: int
) -> tuple[list[Inspection], int]:
    statement = select(Inspection)
    if filters.status is not None:
        statement = statement.where(Inspection.status == filters.status.value)
    if filters.machine_id is not None:
        statement = statement.where(
            or_(
                Inspection.assigned_machine_id == filters.machine_id, Inspection.target_machine_id == filters.machine_id
            )
        )
    if filters.inspection_type is not None:
        statement = statement.where(Inspection.inspection_type == filters.inspection_type)
    if filters.created_after is not None:
        statement = statement.where(Inspection.created_at >= filters.created_after)
    statement = statement.order_by(*_SORTS[sort])
    return await paginate_scalars(session, statement, offset=offset, limit=limit)


async def get_inspection(session: AsyncSession, inspection_id: str, *, for_update: bool = False) -> Inspection | None:
    statement = select(Inspection).where(Inspection.id == inspection_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def add_inspection(session: AsyncSession, values: dict[str, Any]) -> Inspection:
    inspection = Inspection(**values)
    session.add(inspection)
    await session.flush()
    await session.refresh(inspection)
    return inspection


async def update_inspection(session: AsyncSession, inspection_id: str, values: dict[str, Any]) -> Inspection:
    statement = (
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(**values, updated_at=func.now())
        .returning(Inspection)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def add_status_change(session: AsyncSession, change: InspectionStatusChange) -> None:
    session.add(change)
    await session.flush()


async def history(session: AsyncSession, inspection_id: str) -> list[InspectionStatusChange]:
    statement = (
        select(InspectionStatusChange)
        .where(InspectionStatusChange.inspection_id == inspection_id)
        .order_by(InspectionStatusChange.id)
    )
    return list(await session.scalars(statement))


async def results(session: AsyncSession, inspection_id: str) -> list[InspectionResult]:
    statement = (
        select(InspectionResult).where(InspectionResult.inspection_id == inspection_id).order_by(InspectionResult.id)
    )
    return list(await session.scalars(statement))


async def machine_types(session: AsyncSession, machine_id: str) -> list[str] | None:
    """The types a machine declares, or None when there is no such machine."""
    row = await session.scalar(select(Machine.supported_inspection_types).where(Machine.id == machine_id))
    return None if row is None else list(row)


async def move_slots(session: AsyncSession, machine_id: str, change: int) -> None:
    """Add `change` to the machine's count of held slots (never below zero)."""
    await session.execute(
        update(Machine)
        .where(Machine.id == machine_id)
        .values(current_inspections=func.greatest(Machine.current_inspections + change, 0))
        .execution_options(synchronize_session=False)
    )


async def add_drop(session: AsyncSession, drop: MachineDrop) -> None:
    session.add(drop)
    await session.flush()
