"""Queries of heartbeats and of machines' presence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vision_orchestrator.tables import Heartbeat, Machine, MachineStatus

_ADD_HEARTBEAT = insert(Heartbeat).returning(Heartbeat.received_at)


async def add_heartbeat(session: AsyncSession, values: dict[str, Any]) -> datetime:
    """Store a heartbeat; the time it was received (the partition key)."""
    received_at: datetime | None = await session.scalar(_ADD_HEARTBEAT, values)
    assert received_at is not None
    return received_at


async def latest_heartbeat(session: AsyncSession, machine_id: str) -> Heartbeat | None:
    statement = (
        select(Heartbeat).where(Heartbeat.machine_id == machine_id).order_by(Heartbeat.received_at.desc()).limit(1)
    )
    return (await session.scalars(statement)).one_or_none()


def _presence_statement(*, with_heartbeat: bool) -> Any:
    # Built once at import: an `aliased` entity and its locked subquery cost more to construct per call than
    # the statement does to run.
    before = aliased(Machine)
    previous = (
        select(before.id, before.status)
        .where(before.id == bindparam("machine_id"))
        .with_for_update()
        .subquery("previous")
    )
    status = bindparam("new_status", type_=Machine.status.type)
    values: dict[str, Any] = {
        "status": status,
        "status_changed_at": case((Machine.status != status, func.now()), else_=Machine.status_changed_at),
    }
    if with_heartbeat:
        values["last_heartbeat"] = bindparam("heartbeat_at", type_=Machine.last_heartbeat.type)
    return (
        update(Machine)
        .where(Machine.id == previous.c.id)
        .values(**values)
        .returning(previous.c.status)
        .execution_options(synchronize_session=False)
    )


_SET_PRESENCE = _presence_statement(with_heartbeat=False)
_SET_PRESENCE_AND_HEARTBEAT = _presence_statement(with_heartbeat=True)


async def set_presence(
    session: AsyncSession, machine_id: str, status: MachineStatus, *, heartbeat_at: datetime | None
) -> str | None:
    """Set the machine's status (and its last heartbeat when given) in one statement; the status it had, or None
    when there is no such machine. The row lock orders this with a concurrent offline sweep."""
    params: dict[str, Any] = {"machine_id": machine_id, "new_status": status.value}
    if heartbeat_at is None:
        statement = _SET_PRESENCE
    else:
        statement, params["heartbeat_at"] = _SET_PRESENCE_AND_HEARTBEAT, heartbeat_at
    previous_status: str | None = await session.scalar(statement, params)
    return previous_status


async def mark_silent_offline(session: AsyncSession, silent_since: datetime) -> list[tuple[str, datetime | None]]:
    """Turn offline, in one statement, every machine not offline whose last heartbeat is older than
    `silent_since`; each machine and its last heartbeat. Rows a concurrent sweep already turned are skipped
    (the condition is checked again after the row lock), so each machine turns offline once."""
    statement = (
        update(Machine)
        .where(
            Machine.status != MachineStatus.offline.value,
            or_(Machine.last_heartbeat.is_(None), Machine.last_heartbeat < silent_since),
        )
        .values(status=MachineStatus.offline.value, status_changed_at=func.now())
        .returning(Machine.id, Machine.last_heartbeat)
        .execution_options(synchronize_session=False)
    )
    return [(row.id, row.last_heartbeat) for row in await session.execute(statement)]


async def current_status(session: AsyncSession, machine_id: str) -> str | None:
    status: str | None = await session.scalar(select(Machine.status).where(Machine.id == machine_id).with_for_update())
    return status
