"""Request and response bodies of dispatch: send, distribute, the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mirante.types import Text
from vision_orchestrator.config import Strategy
from vision_orchestrator.identifiers import InspectionId, MachineId
from vision_orchestrator.inspections.schemas import InspectionDetail, Priority

Place = Annotated[Text, Field(min_length=1, max_length=200)]


class SendRequest(BaseModel):
    """The seed's body of `/inspections/{id}/send/`: the machine to give it to, and optionally a new priority."""

    model_config = ConfigDict(extra="forbid")

    target_machine_id: MachineId = Field(examples=["mv_abc123def456"])
    priority: Priority | None = None


class DistributeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inspection_id: InspectionId = Field(examples=["ins_xyz789abc123"])
    strategy: Strategy = "load_balanced"
    preferred_machines: Annotated[list[MachineId], Field(max_length=100)] = Field(
        default_factory=list, description="ranked before the others when they can take it (a soft preference)"
    )
    target_machine_id: MachineId | None = Field(
        default=None, description="only this machine (a hard filter); the inspection's own target otherwise"
    )
    location: Place | None = Field(
        default=None, description="for `nearest`: where the part is; the target or first preferred machine's otherwise"
    )
    line: Place | None = Field(default=None, description="for `nearest`: the production line or cell")


class DispatchResult(BaseModel):
    """What a send or a distribution did: the machine chosen and whether it took the inspection. When it did
    not, the inspection is pending again with the reason, and the dispatcher tries again after
    `next_attempt_at`."""

    inspection_id: str
    machine_id: str
    strategy: Strategy | None = None
    delivered: bool
    reason: str | None = None
    next_attempt_at: datetime | None = None
    inspection: InspectionDetail


class PendingInspection(BaseModel):
    id: str
    priority: int
    queued_at: datetime
    estimated_wait_time: int | None = Field(
        description="seconds until a machine should start it; null when no available machine may run it"
    )
    inspection_type: str
    target_machine_id: str | None
    dispatch_attempts: int
    last_dispatch_error: str | None


class MachineAssignment(BaseModel):
    current_inspections: int
    max_concurrent_inspections: int
    queue_position: int | None = Field(
        description="its rank for the next inspection (0 next), by load; null when it cannot take one now"
    )
    status: str
    maintenance: bool
    inspections: list[str] = Field(description="the inspections on it (assigned or processing)")
    queued_for: int = Field(description="pending inspections the estimate expects to wait for it")


class QueueView(BaseModel):
    pending_inspections: list[PendingInspection]
    pending_total: int
    machine_assignments: dict[str, MachineAssignment]
