"""Queries of the inspection-type catalogue."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from vision_orchestrator.tables import Inspection, InspectionType, Machine


async def list_types(session: AsyncSession, *, offset: int, limit: int) -> tuple[list[InspectionType], int]:
    statement = select(InspectionType).order_by(InspectionType.name)
    return await paginate_scalars(session, statement, offset=offset, limit=limit)


async def get_type(session: AsyncSession, name: str, *, for_update: bool = False) -> InspectionType | None:
    statement = select(InspectionType).where(InspectionType.name == name)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def insert_type(session: AsyncSession, name: str, description: str) -> InspectionType | None:
    """The new type, or None when the name is taken."""
    statement = (
        insert(InspectionType)
        .values(name=name, description=description)
        .on_conflict_do_nothing(index_elements=[InspectionType.name])
        .returning(InspectionType)
    )
    return (await session.scalars(statement)).one_or_none()


async def update_type(session: AsyncSession, name: str, description: str) -> InspectionType | None:
    statement = (
        update(InspectionType)
        .where(InspectionType.name == name)
        .values(description=description, updated_at=func.now())
        .returning(InspectionType)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none()


async def usage(session: AsyncSession, name: str) -> tuple[int, int]:
    """How many machines declare the type, and how many inspections (finished or not) ask for it."""
    machines = await session.scalar(
        select(func.count()).select_from(Machine).where(Machine.supported_inspection_types.any_() == name)
    )
    inspections = await session.scalar(
        select(func.count()).select_from(Inspection).where(Inspection.inspection_type == name)
    )
    return int(machines or 0), int(inspections or 0)


async def delete_type(session: AsyncSession, name: str) -> None:
    await session.execute(delete(InspectionType).where(InspectionType.name == name))


async def missing_types(session: AsyncSession, names: Iterable[str]) -> set[str]:
    """The names among `names` the catalogue does not have."""
    wanted = set(names)
    if not wanted:
        return set()
    known = await session.scalars(select(InspectionType.name).where(InspectionType.name.in_(wanted)))
    return wanted - set(known)
