"""Queries of machines and their credentials."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import UnaryExpression

from mirante.db import paginate_scalars
from vision_orchestrator.lifecycle import ON_A_MACHINE, InspectionStatus
from vision_orchestrator.machines.schemas import MachineFilters
from vision_orchestrator.tables import Inspection, Machine, MachineCredential, MachineStatus

_SORTS: dict[str, UnaryExpression[Any]] = {
    "name": Machine.name.asc(),
    "-name": Machine.name.desc(),
    "created_at": Machine.created_at.asc(),
    "-created_at": Machine.created_at.desc(),
}

AVAILABLE = and_(
    Machine.status == MachineStatus.online.value,
    Machine.maintenance.is_(False),
    Machine.current_inspections < Machine.max_concurrent_inspections,
)
"""`schemas.is_available` in SQL."""


def _filtered(filters: MachineFilters) -> Select[Any]:
    statement = select(Machine)
    if filters.status is not None:
        statement = statement.where(Machine.status == filters.status.value)
    if filters.maintenance is not None:
        statement = statement.where(Machine.maintenance.is_(filters.maintenance))
    if filters.is_available is not None:
        statement = statement.where(AVAILABLE if filters.is_available else ~AVAILABLE)
    if filters.inspection_type is not None:
        statement = statement.where(Machine.supported_inspection_types.any_() == filters.inspection_type)
    if filters.location is not None:
        statement = statement.where(Machine.location == filters.location)
    return statement


async def list_machines(
    session: AsyncSession, filters: MachineFilters, *, sort: str, offset: int, limit: int
) -> tuple[list[Machine], int]:
    statement = _filtered(filters).order_by(_SORTS[sort], Machine.id)
    return await paginate_scalars(session, statement, offset=offset, limit=limit)


async def get_machine(session: AsyncSession, machine_id: str, *, for_update: bool = False) -> Machine | None:
    statement = select(Machine).where(Machine.id == machine_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def name_taken(session: AsyncSession, name: str, *, other_than: str | None = None) -> bool:
    statement = select(Machine.id).where(Machine.name == name)
    if other_than is not None:
        statement = statement.where(Machine.id != other_than)
    return (await session.scalar(statement.limit(1))) is not None


async def insert_machine(session: AsyncSession, values: dict[str, Any]) -> Machine | None:
    """The new machine, or None when its name is taken."""
    statement = (
        insert(Machine)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Machine.name])
        .returning(Machine)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


async def update_machine(session: AsyncSession, machine_id: str, values: dict[str, Any]) -> Machine | None:
    statement = (
        update(Machine)
        .where(Machine.id == machine_id)
        .values(**values, updated_at=func.now())
        .returning(Machine)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


async def delete_machine(session: AsyncSession, machine: Machine) -> None:
    await session.delete(machine)
    await session.flush()


async def open_inspections(session: AsyncSession, machine_id: str) -> int:
    """Inspections on the machine, or pending with it as their target."""
    on_machine = and_(
        Inspection.assigned_machine_id == machine_id, Inspection.status.in_([status.value for status in ON_A_MACHINE])
    )
    waiting = and_(Inspection.target_machine_id == machine_id, Inspection.status == InspectionStatus.pending.value)
    count = await session.scalar(select(func.count()).select_from(Inspection).where(or_(on_machine, waiting)))
    return int(count or 0)


async def active_credential(
    session: AsyncSession, machine_id: str, *, for_update: bool = False
) -> MachineCredential | None:
    statement = select(MachineCredential).where(
        MachineCredential.machine_id == machine_id, MachineCredential.revoked_at.is_(None)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


_CREDENTIAL_WITH_MACHINE = (
    select(MachineCredential, Machine)
    .join(Machine, Machine.id == MachineCredential.machine_id)
    .where(MachineCredential.machine_id == bindparam("machine_id"), MachineCredential.revoked_at.is_(None))
    .execution_options(populate_existing=True)
)


async def active_credential_with_machine(
    session: AsyncSession, machine_id: str
) -> tuple[MachineCredential, Machine] | None:
    """The machine's active credential and the machine, in one statement; None when either is missing."""
    row = (await session.execute(_CREDENTIAL_WITH_MACHINE, {"machine_id": machine_id})).one_or_none()
    return None if row is None else (row[0], row[1])


async def latest_credential(session: AsyncSession, machine_id: str) -> MachineCredential | None:
    statement = (
        select(MachineCredential)
        .where(MachineCredential.machine_id == machine_id)
        .order_by(MachineCredential.revoked_at.is_(None).desc(), MachineCredential.id.desc())
        .limit(1)
    )
    return (await session.scalars(statement)).one_or_none()


async def revoke_credential(session: AsyncSession, credential: MachineCredential, now: datetime) -> None:
    credential.revoked_at = now
    await session.flush()


async def add_credential(
    session: AsyncSession, machine_id: str, secret_hash: str, webhook_secret: str
) -> MachineCredential:
    credential = MachineCredential(machine_id=machine_id, secret_hash=secret_hash, webhook_secret=webhook_secret)
    session.add(credential)
    await session.flush()
    await session.refresh(credential)
    return credential


async def touch_credential(session: AsyncSession, credential_id: int, now: datetime, every_seconds: float) -> None:
    """Record the use, at most once per `every_seconds` (machines call every few seconds)."""
    await session.execute(
        update(MachineCredential)
        .where(
            MachineCredential.id == credential_id,
            or_(
                MachineCredential.last_used_at.is_(None),
                MachineCredential.last_used_at < now - timedelta(seconds=every_seconds),
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
