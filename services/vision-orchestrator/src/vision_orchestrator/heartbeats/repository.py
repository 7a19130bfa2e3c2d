"""Queries of heartbeats and of machines' presence."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vision_orchestrator.tables import Heartbeat, Machine, MachineStatus

HEARTBEAT_COLUMNS = ("machine_id", "reported_at", "status", "system_info", "performance_metrics")


def _record_heartbeat_statement() -> Any:
    # One statement, one round trip: the heartbeat's row in the time series, and the machine's presence with the
    # status it had (read under the row's lock, which orders this with a concurrent offline sweep).
    heartbeats, machines = cast(Table, Heartbeat.__table__), cast(Table, Machine.__table__)
    beat = (
        insert(heartbeats)
        .values({name: bindparam(name, type_=heartbeats.c[name].type) for name in HEARTBEAT_COLUMNS})
        .returning(heartbeats.c.received_at)
        .cte("beat")
    )
    before = machines.alias("before")
    previous = (
        select(before.c.id, before.c.status)
        .where(before.c.id == bindparam("machine_id", type_=machines.c.id.type))
        .with_for_update()
        .cte("previous")
    )
    status = bindparam("status", type_=machines.c.status.type)
    moved = (
        update(machines)
        .where(machines.c.id == previous.c.id)
        .values(
            status=status,
            status_changed_at=case((machines.c.status != status, func.now()), else_=machines.c.status_changed_at),
            last_heartbeat=select(beat.c.received_at).scalar_subquery(),
        )
        .returning(previous.c.status.label("previous_status"))
        .cte("moved")
    )
    return select(beat.c.received_at, select(moved.c.previous_status).scalar_subquery().label("previous_status"))


_RECORD_HEARTBEAT = _record_heartbeat_statement()


async def record_heartbeat(session: AsyncSession, values: dict[str, Any]) -> tuple[datetime, str | None]:
    """Store a heartbeat (`values` holds every column of `HEARTBEAT_COLUMNS`) and set its machine's status and
    last heartbeat; the time it was received (the partition key) and the status the machine had, None when there
    is no such machine."""
    row = (await session.execute(_RECORD_HEARTBEAT, values)).one()
    received_at: datetime = row.received_at
    previous_status: str | None = row.previous_status
    return received_at, previous_status


async def latest_heartbeat(session: AsyncSession, machine_id: str) -> Heartbeat | None:
    statement = (
        select(Heartbeat).where(Heartbeat.machine_id == machine_id).order_by(Heartbeat.received_at.desc()).limit(1)
    )
    return (await session.scalars(statement)).one_or_none()


def _presence_statement() -> Any:
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
    return (
        update(Machine)
        .where(Machine.id == previous.c.id)
        .values(
            status=status,
            status_changed_at=case((Machine.status != status, func.now()), else_=Machine.status_changed_at),
        )
        .returning(previous.c.status)
        .execution_options(synchronize_session=False)
    )


_SET_PRESENCE = _presence_statement()


async def set_presence(session: AsyncSession, machine_id: str, status: MachineStatus) -> str | None:
    """Set the machine's status in one statement; the status it had, or None when there is no such machine. The
    row lock orders this with a concurrent offline sweep."""
    previous_status: str | None = await session.scalar(
        _SET_PRESENCE, {"machine_id": machine_id, "new_status": status.value}
    )
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
