"""Queries of heartbeats and of machines' presence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vision_orchestrator.tables import Heartbeat, Machine, MachineStatus


async def add_heartbeat(session: AsyncSession, values: dict[str, Any]) -> datetime:
    """Store a heartbeat; the time it was received (the partition key)."""
    received_at: datetime | None = await session.scalar(
        insert(Heartbeat).values(**values).returning(Heartbeat.received_at)
    )
    assert received_at is not None
    return received_at


async def latest_heartbeat(session: AsyncSession, machine_id: str) -> Heartbeat | None:
    statement = (
        select(Heartbeat).where(Heartbeat.machine_id == machine_id).order_by(Heartbeat.received_at.desc()).limit(1)
    )
    return (await session.scalars(statement)).one_or_none()


async def set_presence(
    session: AsyncSession, machine_id: str, status: MachineStatus, *, heartbeat_at: datetime | None
) -> str | None:
    """Set the machine's status (and its last heartbeat when given) in one statement; the status it had, or None
    when there is no such machine. The row lock orders this with a concurrent offline sweep."""
    before = aliased(Machine)
    previous = select(before.id, before.status).where(before.id == machine_id).with_for_update().subquery("previous")
    values: dict[str, Any] = {
        "status": status.value,
        "status_changed_at": case((Machine.status != status.value, func.now()), else_=Machine.status_changed_at),
    }
    if heartbeat_at is not None:
        values["last_heartbeat"] = heartbeat_at
    statement = (
        update(Machine)
        .where(Machine.id == previous.c.id)
        .values(**values)
        .returning(previous.c.status)
        .execution_options(synchronize_session=False)
    )
    previous_status: str | None = await session.scalar(statement)
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
