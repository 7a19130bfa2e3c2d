"""Dispatch as the API offers it: send to a machine, distribute with a strategy, the queue. The moves run in the
dispatcher's own transactions (the machine is called between two of them); the answer is read afterwards."""

from __future__ import annotations

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.errors import MissingReferenceError
from vision_orchestrator.config import Settings, Strategy
from vision_orchestrator.dispatch import repository
from vision_orchestrator.dispatch.client import MachineClient
from vision_orchestrator.dispatch.dispatcher import Dispatcher, Outcome
from vision_orchestrator.dispatch.queue import queue_view
from vision_orchestrator.dispatch.schemas import DispatchResult, DistributeRequest, QueueView, SendRequest
from vision_orchestrator.dispatch.strategies import Place, Want
from vision_orchestrator.inspections.errors import unknown_machine
from vision_orchestrator.inspections.schemas import CancelRequest, InspectionDetail
from vision_orchestrator.inspections.service import cancel_inspection, get_inspection


def build_dispatcher(app: FastAPI) -> None:
    """`app.state.dispatcher`, on the app's engine; its LISTEN connection uses the app's database URL."""
    settings: Settings = app.state.settings
    client = MachineClient(
        connect_timeout=settings.machine_connect_timeout_seconds, read_timeout=settings.machine_read_timeout_seconds
    )
    app.state.dispatcher = Dispatcher(
        app.state.sessionmaker, settings, client, database_url=app.state.urls.database_url
    )


async def dispatcher_worker(app: FastAPI) -> None:
    dispatcher: Dispatcher = app.state.dispatcher
    settings: Settings = app.state.settings
    try:
        if settings.dispatcher_enabled:
            await dispatcher.run()
        else:
            await dispatcher.idle()
    finally:
        await dispatcher.close()


async def dispatcher_of(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


async def _result(session: AsyncSession, outcome: Outcome, strategy: Strategy | None) -> DispatchResult:
    return DispatchResult(
        inspection_id=outcome.inspection_id,
        machine_id=outcome.machine_id,
        strategy=strategy,
        delivered=outcome.delivered,
        reason=outcome.reason,
        next_attempt_at=outcome.next_attempt_at,
        inspection=await get_inspection(session, outcome.inspection_id),
    )


async def send(
    dispatcher: Dispatcher, session: AsyncSession, inspection_id: str, body: SendRequest, actor: str
) -> DispatchResult:
    outcome = await dispatcher.send(inspection_id, body.target_machine_id, body.priority, actor)
    return await _result(session, outcome, None)


async def _place(session: AsyncSession, body: DistributeRequest, target: str | None) -> Place:
    if body.location is not None or body.line is not None:
        return Place(body.location, body.line)
    for machine_id in ([target] if target else []) + list(body.preferred_machines):
        machine = await repository.get_machine(session, machine_id)
        if machine is not None:
            return Place(machine.location, machine.line)
    return Place()


async def _check_machines(session: AsyncSession, body: DistributeRequest) -> None:
    """404 naming the field when `target_machine_id` or one of `preferred_machines` names no machine."""
    if body.target_machine_id is not None and await repository.get_machine(session, body.target_machine_id) is None:
        raise unknown_machine("target_machine_id", body.target_machine_id)
    preferred = list(dict.fromkeys(body.preferred_machines))
    existing = await repository.existing_machine_ids(session, preferred) if preferred else set()
    if missing := [machine_id for machine_id in preferred if machine_id not in existing]:
        listed = ", ".join(repr(machine_id) for machine_id in missing)
        raise MissingReferenceError("machine", listed, "preferred_machines", machine_ids=missing)


async def distribute(
    dispatcher: Dispatcher, session: AsyncSession, body: DistributeRequest, actor: str
) -> DispatchResult:
    inspection = await repository.get_inspection(session, body.inspection_id)
    if inspection is None:
        raise MissingReferenceError("inspection", repr(body.inspection_id), "inspection_id")
    await _check_machines(session, body)
    target = body.target_machine_id or inspection.target_machine_id
    want = Want(
        inspection.inspection_type,
        target,
        tuple(dict.fromkeys(body.preferred_machines)),
        await _place(session, body, target),
    )
    outcome = await dispatcher.distribute(body.inspection_id, body.strategy, want, actor)
    return await _result(session, outcome, body.strategy)


async def cancel(
    session: AsyncSession, inspection_id: str, actor: str, body: CancelRequest | None
) -> tuple[InspectionDetail, str | None]:
    """Cancel the inspection; also the machine that held it, which is owed a cancel call."""
    cancelled = await cancel_inspection(session, inspection_id, actor, body.reason if body else None)
    machine_id = cancelled.history[-1].machine_id if cancelled.history else None
    return cancelled, machine_id


async def queue(session: AsyncSession, settings: Settings, limit: int) -> QueueView:
    return await queue_view(session, settings, limit)
