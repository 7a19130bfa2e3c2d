"""Inspections: list, read with history and results, create, change while pending, cancel; and `transition`,
the one way any feature moves an inspection's status. Every function runs in the caller's transaction."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit
from vision_orchestrator.capacity import announce_capacity, announce_work
from vision_orchestrator.catalogue.builtin import BUILTIN_TOOL_TYPES
from vision_orchestrator.catalogue.service import check_known, known_among
from vision_orchestrator.identifiers import SCHEMA, SOURCE, new_inspection_id
from vision_orchestrator.inspections import repository
from vision_orchestrator.inspections.errors import (
    InspectionNotFoundError,
    InspectionNotPendingError,
    InvalidPipelineError,
    InvalidTransitionError,
    MachineLacksTypeError,
    unknown_machine,
)
from vision_orchestrator.inspections.pipeline import PipelineConfig, problems
from vision_orchestrator.inspections.schemas import InspectionDetail, InspectionFilters, InspectionRead
from vision_orchestrator.lifecycle import InspectionStatus, can_move, slot_change
from vision_orchestrator.tables import DropReason, Inspection, InspectionStatusChange, MachineDrop

logger = logging.getLogger(__name__)

INSPECTION_CANCELLED = "vision.inspection.cancelled"
TARGET_FIELD = "target_machine_id"


async def list_inspections(
    session: AsyncSession, filters: InspectionFilters, *, sort: str, offset: int, limit: int
) -> tuple[list[InspectionRead], int]:
    rows, count = await repository.list_inspections(session, filters, sort=sort, offset=offset, limit=limit)
    return [InspectionRead.of(row) for row in rows], count


async def _inspection(session: AsyncSession, inspection_id: str, *, for_update: bool = False) -> Inspection:
    row = await repository.get_inspection(session, inspection_id, for_update=for_update)
    if row is None:
        raise InspectionNotFoundError(inspection_id)
    return row


async def get_inspection(session: AsyncSession, inspection_id: str) -> InspectionDetail:
    row = await _inspection(session, inspection_id)
    history = await repository.history(session, inspection_id)
    results = await repository.results(session, inspection_id)
    return InspectionDetail.build(row, history, results)


async def _checked_pipeline(session: AsyncSession, config: PipelineConfig) -> dict[str, Any]:
    types = {tool.tool_type for tool in config.tools}
    known = BUILTIN_TOOL_TYPES | await known_among(session, types - BUILTIN_TOOL_TYPES)
    found = problems(config, known)
    if found:
        raise InvalidPipelineError(found)
    return config.stored()


async def _check_target(session: AsyncSession, machine_id: str, inspection_type: str) -> None:
    types = await repository.machine_types(session, machine_id)
    if types is None:
        raise unknown_machine(TARGET_FIELD, machine_id)
    if inspection_type not in types:
        raise MachineLacksTypeError(TARGET_FIELD, machine_id, inspection_type)


async def _checked(session: AsyncSession, values: dict[str, Any], current: Inspection | None) -> dict[str, Any]:
    """`values` with the pipeline as stored, after the checks that need the database: 422 for an invalid
    pipeline, 404 for a type or target machine that does not exist, 409 for a target that lacks the type."""
    checked = dict(values)
    if "inspection_type" in values:
        await check_known(session, "inspection_type", [values["inspection_type"]])
    if "pipeline_config" in values:
        checked["pipeline_config"] = await _checked_pipeline(
            session, PipelineConfig.model_validate(values["pipeline_config"])
        )
    target = values.get("target_machine_id", current.target_machine_id if current else None)
    inspection_type = values.get("inspection_type", current.inspection_type if current else None)
    if target is not None and inspection_type is not None and ({"target_machine_id", "inspection_type"} & set(values)):
        await _check_target(session, target, inspection_type)
    return checked


async def create_inspection(session: AsyncSession, values: dict[str, Any], actor: str) -> InspectionDetail:
    """A new pending inspection, its creation recorded in the history. 422 for an invalid pipeline; 404 for a
    type or a target machine that does not exist; 409 for a target machine that does not declare the type."""
    checked = await _checked(session, values, None)
    inspection = await repository.add_inspection(
        session, {"id": new_inspection_id(), "created_by": actor, "status": InspectionStatus.pending.value, **checked}
    )
    await repository.add_status_change(
        session,
        InspectionStatusChange(
            inspection_id=inspection.id, from_status=None, to_status=InspectionStatus.pending.value, actor=actor
        ),
    )
    await announce_work(session, inspection.id)
    logger.info("inspection %s created by %s", inspection.id, actor)
    return await get_inspection(session, inspection.id)


async def update_inspection(session: AsyncSession, inspection_id: str, values: dict[str, Any]) -> InspectionDetail:
    """Change an inspection's fields while it is pending (409 otherwise); the same checks as creation."""
    current = await _inspection(session, inspection_id, for_update=True)
    if current.status != InspectionStatus.pending:
        raise InspectionNotPendingError(inspection_id, current.status)
    if values:
        await repository.update_inspection(session, inspection_id, await _checked(session, values, current))
    return await get_inspection(session, inspection_id)


async def transition(
    session: AsyncSession,
    inspection: Inspection,
    target: InspectionStatus,
    *,
    actor: str,
    reason: str | None = None,
    machine_id: str | None = None,
) -> InspectionStatus:
    """Move a locked inspection to `target`: 409 when the flow has no such move. Sets the timestamps of the new
    status, keeps the machine's count of held slots, and records the move in the history. Returns the status it
    left. `machine_id` is the machine an assignment goes to."""
    current = InspectionStatus(inspection.status)
    if not can_move(current, target):
        raise InvalidTransitionError(inspection.id, current.value, target.value)
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": target.value}
    holder = inspection.assigned_machine_id
    if target is InspectionStatus.assigned:
        if machine_id is None:
            raise ValueError("an assignment needs a machine")
        holder = machine_id
        values |= {"assigned_machine_id": machine_id, "assigned_at": now, "lease": inspection.lease + 1}
    elif target is InspectionStatus.processing:
        values["started_at"] = now
    elif target is InspectionStatus.pending:
        values |= {"assigned_machine_id": None, "assigned_at": None, "started_at": None, "queued_at": now}
    else:
        values["finished_at"] = now
    change = slot_change(current, target)
    if change and holder is not None:
        await repository.move_slots(session, holder, change)
    await repository.update_inspection(session, inspection.id, values)
    await repository.add_status_change(
        session,
        InspectionStatusChange(
            inspection_id=inspection.id,
            from_status=current.value,
            to_status=target.value,
            machine_id=holder,
            actor=actor,
            reason=reason,
        ),
    )
    return current


async def cancel_inspection(
    session: AsyncSession, inspection_id: str, actor: str, reason: str | None
) -> InspectionDetail:
    """Cancel an inspection that has not finished (409 otherwise) and queue `vision.inspection.cancelled`.

    A machine holding it gets its slot back at once, and owes a cancel call (`machine_drops`), made after the
    commit and retried by the dispatcher until the machine has heard it.
    """
    inspection = await _inspection(session, inspection_id, for_update=True)
    machine_id = inspection.assigned_machine_id
    lease = inspection.lease
    previous = await transition(session, inspection, InspectionStatus.cancelled, actor=actor, reason=reason)
    if machine_id is not None:
        await repository.add_drop(
            session,
            MachineDrop(
                machine_id=machine_id, inspection_id=inspection_id, attempt=lease, reason=DropReason.cancelled.value
            ),
        )
        await announce_capacity(session, machine_id)
    await emit(
        session,
        SCHEMA,
        Event(
            source=SOURCE,
            type=INSPECTION_CANCELLED,
            subject=f"inspection/{inspection_id}",
            data={
                "inspection_id": inspection_id,
                "previous_status": previous.value,
                "machine_id": machine_id,
                "reason": reason,
                "cancelled_by": actor,
            },
        ),
    )
    logger.info("inspection %s cancelled by %s (was %s)", inspection_id, actor, previous.value)
    return await get_inspection(session, inspection_id)
