"""Queries of dispatch: claiming pending work, locking machines, outcomes of sends, drops owed, the queue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.lifecycle import ON_A_MACHINE, InspectionStatus
from vision_orchestrator.machines.repository import AVAILABLE
from vision_orchestrator.tables import (
    Inspection,
    InspectionResult,
    Machine,
    MachineCredential,
    MachineDrop,
    MachineStatus,
)

PENDING = InspectionStatus.pending.value
HELD = [status.value for status in ON_A_MACHINE]


def _due(now: datetime) -> Any:
    return or_(Inspection.next_dispatch_at.is_(None), Inspection.next_dispatch_at <= now)


def _has_free_machine() -> Any:
    return exists().where(
        AVAILABLE,
        Machine.supported_inspection_types.any_() == Inspection.inspection_type,
        or_(Inspection.target_machine_id.is_(None), Machine.id == Inspection.target_machine_id),
    )


async def claim_pending(
    session: AsyncSession, now: datetime, limit: int, *, skip_machines: Iterable[str] = ()
) -> list[Inspection]:
    """Pending inspections that are due and that some free machine could take, by priority then age, locked
    so that another replica's claim skips them."""
    statement = (
        select(Inspection)
        .where(Inspection.status == PENDING, _due(now), _has_free_machine())
        .order_by(Inspection.priority, Inspection.queued_at, Inspection.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Inspection)
        .execution_options(populate_existing=True)
    )
    skipped = list(skip_machines)
    if skipped:
        statement = statement.where(
            or_(Inspection.target_machine_id.is_(None), Inspection.target_machine_id.not_in(skipped))
        )
    return list(await session.scalars(statement))


async def lock_inspection(session: AsyncSession, inspection_id: str) -> Inspection | None:
    statement = (
        select(Inspection)
        .where(Inspection.id == inspection_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


async def available_machines(session: AsyncSession, types: Iterable[str]) -> list[Machine]:
    """The available machines running any of `types`, read without locks (to plan where work goes)."""
    statement = (
        select(Machine)
        .where(AVAILABLE, Machine.supported_inspection_types.overlap(sorted(set(types))))
        .order_by(Machine.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def lock_machines(session: AsyncSession, machine_ids: Iterable[str]) -> list[Machine]:
    """Those of `machine_ids` that are still available, locked in id order (so two replicas never deadlock).

    Under READ COMMITTED a row another transaction changed is checked again once its lock is released, so the
    counts read here are the committed ones and stay so until this transaction ends.
    """
    statement = (
        select(Machine)
        .where(AVAILABLE, Machine.id.in_(sorted(set(machine_ids))))
        .order_by(Machine.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def machines_running(session: AsyncSession, inspection_type: str) -> list[Machine]:
    statement = select(Machine).where(Machine.supported_inspection_types.any_() == inspection_type)
    return list(await session.scalars(statement))


async def get_machine(session: AsyncSession, machine_id: str) -> Machine | None:
    return await session.get(Machine, machine_id, populate_existing=True)


async def existing_machine_ids(session: AsyncSession, machine_ids: Iterable[str]) -> set[str]:
    """The ids among `machine_ids` that name a machine."""
    return set(await session.scalars(select(Machine.id).where(Machine.id.in_(list(machine_ids)))))


async def success_counts(
    session: AsyncSession, machine_ids: Iterable[str], since: datetime
) -> dict[str, dict[str, tuple[int, int]]]:
    """Per machine and type: (completed, finished) among its results since `since`."""
    statement = (
        select(
            InspectionResult.machine_id,
            Inspection.inspection_type,
            func.count().filter(InspectionResult.status == "completed"),
            func.count(),
        )
        .join(Inspection, Inspection.id == InspectionResult.inspection_id)
        .where(InspectionResult.machine_id.in_(list(machine_ids)), InspectionResult.received_at >= since)
        .group_by(InspectionResult.machine_id, Inspection.inspection_type)
    )
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for machine_id, inspection_type, completed, finished in await session.execute(statement):
        counts.setdefault(machine_id, {})[inspection_type] = (int(completed), int(finished))
    return counts


async def record_send_failure(session: AsyncSession, inspection_id: str, reason: str, next_try: datetime) -> None:
    await session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(
            dispatch_attempts=Inspection.dispatch_attempts + 1,
            last_dispatch_error=reason,
            next_dispatch_at=next_try,
        )
        .execution_options(synchronize_session=False)
    )


async def clear_send_failure(session: AsyncSession, inspection_id: str) -> None:
    await session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(next_dispatch_at=None)
        .execution_options(synchronize_session=False)
    )


async def bump_lease(session: AsyncSession, inspection_id: str) -> None:
    await session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(lease=Inspection.lease + 1)
        .execution_options(synchronize_session=False)
    )


async def set_priority(session: AsyncSession, inspection_id: str, priority: int) -> None:
    await session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(priority=priority)
        .execution_options(synchronize_session=False)
    )


async def stranded(session: AsyncSession, offline_before: datetime, limit: int) -> list[Inspection]:
    """Inspections on machines offline since before `offline_before`, locked (skipping those another holds)."""
    statement = (
        select(Inspection)
        .join(Machine, Machine.id == Inspection.assigned_machine_id)
        .where(
            Inspection.status.in_(HELD),
            Machine.status == MachineStatus.offline.value,
            Machine.status_changed_at < offline_before,
        )
        .order_by(Inspection.assigned_at, Inspection.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Inspection)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def undelivered(session: AsyncSession, assigned_before: datetime, limit: int) -> list[Inspection]:
    """Inspections still `assigned` (no machine answer recorded) since before `assigned_before`, on machines
    that are up, locked (skipping those another holds)."""
    statement = (
        select(Inspection)
        .join(Machine, Machine.id == Inspection.assigned_machine_id)
        .where(
            Inspection.status == InspectionStatus.assigned.value,
            Inspection.assigned_at < assigned_before,
            Machine.status != MachineStatus.offline.value,
        )
        .order_by(Inspection.assigned_at, Inspection.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Inspection)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def touch_assigned(session: AsyncSession, inspection_id: str, now: datetime) -> None:
    await session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(assigned_at=now)
        .execution_options(synchronize_session=False)
    )


async def add_drop(session: AsyncSession, machine_id: str, inspection_id: str, attempt: int, reason: str) -> None:
    session.add(MachineDrop(machine_id=machine_id, inspection_id=inspection_id, attempt=attempt, reason=reason))
    await session.flush()


async def claim_drops(
    session: AsyncSession, now: datetime, hold: timedelta, limit: int, machine_id: str | None = None
) -> list[tuple[MachineDrop, Machine]]:
    """Drops owed to machines that are not offline, due now; each is held for `hold` so no other pass sends it
    meanwhile (the call happens after this transaction)."""
    statement = (
        select(MachineDrop, Machine)
        .join(Machine, Machine.id == MachineDrop.machine_id)
        .where(
            MachineDrop.settled_at.is_(None),
            Machine.status != MachineStatus.offline.value,
            or_(MachineDrop.next_try_at.is_(None), MachineDrop.next_try_at <= now),
        )
        .order_by(MachineDrop.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=MachineDrop)
        .execution_options(populate_existing=True)
    )
    if machine_id is not None:
        statement = statement.where(MachineDrop.machine_id == machine_id)
    rows = [(drop, machine) for drop, machine in await session.execute(statement)]
    for drop, _ in rows:
        drop.next_try_at = now + hold
    await session.flush()
    return rows


async def settle_drop(session: AsyncSession, drop_id: int, outcome: str, now: datetime) -> None:
    await session.execute(
        update(MachineDrop)
        .where(MachineDrop.id == drop_id)
        .values(outcome=outcome, settled_at=now, tries=MachineDrop.tries + 1, last_error=None)
        .execution_options(synchronize_session=False)
    )


async def drop_failed(session: AsyncSession, drop_id: int, error: str, next_try: datetime) -> None:
    await session.execute(
        update(MachineDrop)
        .where(MachineDrop.id == drop_id)
        .values(last_error=error, next_try_at=next_try, tries=MachineDrop.tries + 1)
        .execution_options(synchronize_session=False)
    )


# -- the queue -----------------------------------------------------------------------------------------------


async def pending_queue(session: AsyncSession, limit: int) -> tuple[list[Inspection], int]:
    statement = (
        select(Inspection)
        .where(Inspection.status == PENDING)
        .order_by(Inspection.priority, Inspection.queued_at, Inspection.id)
        .limit(limit)
    )
    total = await session.scalar(select(func.count()).select_from(Inspection).where(Inspection.status == PENDING))
    return list(await session.scalars(statement)), int(total or 0)


async def all_machines(session: AsyncSession) -> list[Machine]:
    return list(await session.scalars(select(Machine).order_by(Machine.id)))


async def held_inspections(session: AsyncSession) -> list[Inspection]:
    statement = select(Inspection).where(Inspection.status.in_(HELD)).order_by(Inspection.assigned_at)
    return list(await session.scalars(statement))


async def mean_processing_seconds(session: AsyncSession, since: datetime) -> dict[str, float]:
    """Per type, the mean processing time machines reported in their results since `since`."""
    statement = (
        select(Inspection.inspection_type, func.avg(InspectionResult.processing_time_seconds))
        .join(Inspection, Inspection.id == InspectionResult.inspection_id)
        .where(
            InspectionResult.received_at >= since,
            and_(
                InspectionResult.processing_time_seconds.is_not(None),
                InspectionResult.processing_time_seconds > 0,
            ),
        )
        .group_by(Inspection.inspection_type)
    )
    return {name: float(mean) for name, mean in await session.execute(statement) if mean is not None}


async def set_target(session: AsyncSession, inspection_id: str, machine_id: str) -> None:
    await session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(target_machine_id=machine_id)
        .execution_options(synchronize_session=False)
    )


async def get_inspection(session: AsyncSession, inspection_id: str) -> Inspection | None:
    return await session.get(Inspection, inspection_id, populate_existing=True)


async def webhook_secrets(session: AsyncSession, machine_ids: Iterable[str]) -> dict[str, str]:
    """The `webhook_secret` of each machine's active credential, to sign the calls made to it; a machine
    without one (no active credential, or one issued before secrets were) is absent and called unsigned."""
    ids = sorted(set(machine_ids))
    if not ids:
        return {}
    statement = select(MachineCredential.machine_id, MachineCredential.webhook_secret).where(
        MachineCredential.machine_id.in_(ids),
        MachineCredential.revoked_at.is_(None),
        MachineCredential.webhook_secret.is_not(None),
    )
    rows = (await session.execute(statement)).all()
    return {machine_id: secret for machine_id, secret in rows if secret is not None}
