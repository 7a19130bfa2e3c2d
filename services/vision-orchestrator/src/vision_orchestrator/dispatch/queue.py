"""The queue as operators see it: pending inspections with an estimated wait, and each machine's assignments.

The estimate plays the queue forward (list scheduling): every slot of an available machine frees at a known
time (now when free, else when its inspection should end: the type's mean processing time from recent results,
`default_processing_seconds` when none, less what has already run). Pending inspections, by priority then age,
each take the earliest slot among the machines that may run them, which then stays busy for that type's mean
time. A pending inspection no available machine may run gets no estimate (null).
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.config import Settings
from vision_orchestrator.dispatch import repository
from vision_orchestrator.dispatch.dispatcher import candidate_of
from vision_orchestrator.dispatch.schemas import MachineAssignment, PendingInspection, QueueView
from vision_orchestrator.dispatch.strategies import Want, rank

MEASURED_WINDOW = timedelta(hours=24)


async def queue_view(session: AsyncSession, settings: Settings, limit: int) -> QueueView:
    now = datetime.now(UTC)
    pending, total = await repository.pending_queue(session, limit)
    machines = await repository.all_machines(session)
    held = await repository.held_inspections(session)
    means = await repository.mean_processing_seconds(session, now - MEASURED_WINDOW)

    def mean(inspection_type: str) -> float:
        return means.get(inspection_type, settings.default_processing_seconds)

    candidates = {m.id: candidate_of(m) for m in machines}
    slots: dict[str, list[float]] = {}
    for machine in machines:
        running = [
            max(mean(i.inspection_type) - (now - (i.started_at or i.assigned_at or now)).total_seconds(), 0.0)
            for i in held
            if i.assigned_machine_id == machine.id
        ]
        free = [0.0] * max(machine.max_concurrent_inspections - len(running), 0)
        slots[machine.id] = sorted(free + running)[: machine.max_concurrent_inspections]
        heapq.heapify(slots[machine.id])

    queued_for: dict[str, int] = dict.fromkeys(candidates, 0)
    rows = []
    for inspection in pending:
        want = Want(inspection.inspection_type, inspection.target_machine_id)
        usable = [
            c
            for c in candidates.values()
            if c.available
            and want.inspection_type in c.supported_types
            and (want.target_machine_id is None or c.id == want.target_machine_id)
            and slots[c.id]
        ]
        wait: float | None = None
        if usable:
            machine_id = min(usable, key=lambda c: (slots[c.id][0], c.id)).id
            wait = heapq.heappop(slots[machine_id])
            heapq.heappush(slots[machine_id], wait + mean(inspection.inspection_type))
            queued_for[machine_id] += 1 if wait > 0 else 0
        rows.append(
            PendingInspection(
                id=inspection.id,
                priority=inspection.priority,
                queued_at=inspection.queued_at,
                estimated_wait_time=None if wait is None else round(wait),
                inspection_type=inspection.inspection_type,
                target_machine_id=inspection.target_machine_id,
                dispatch_attempts=inspection.dispatch_attempts,
                last_dispatch_error=inspection.last_dispatch_error,
            )
        )

    ready = [c for c in candidates.values() if c.available and c.free > 0]
    order = {c.id: index for index, c in enumerate(rank("load_balanced", Want(""), ready))}
    assignments = {
        m.id: MachineAssignment(
            current_inspections=m.current_inspections,
            max_concurrent_inspections=m.max_concurrent_inspections,
            queue_position=order.get(m.id),
            status=m.status,
            maintenance=m.maintenance,
            inspections=[i.id for i in held if i.assigned_machine_id == m.id],
            queued_for=queued_for[m.id],
        )
        for m in machines
    }
    return QueueView(pending_inspections=rows, pending_total=total, machine_assignments=assignments)
