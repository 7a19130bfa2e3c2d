"""Request and response bodies of inspections, with the contract's field names."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mirante.types import DateTime, Int32, Text
from mirante.web.schema import Omittable
from vision_orchestrator.identifiers import MachineId, TypeName
from vision_orchestrator.inspections.pipeline import PipelineConfig
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.tables import (
    PRIORITY_DEFAULT,
    PRIORITY_HIGHEST,
    PRIORITY_LOWEST,
    Inspection,
    InspectionResult,
    InspectionStatusChange,
)

Name = Annotated[Text, Field(min_length=1, max_length=200)]
Description = Annotated[Text, Field(max_length=2000)]
Priority = Annotated[
    Int32, Field(ge=PRIORITY_HIGHEST, le=PRIORITY_LOWEST, description="1 (first) to 10 (last)", examples=[2])
]


class InspectionWrite(BaseModel):
    """Every writable field of an inspection: the body of POST and PUT."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Inspeção de Qualidade A"])
    description: Description = ""
    inspection_type: TypeName = Field(examples=["blob_detection"])
    pipeline_config: PipelineConfig
    priority: Priority = PRIORITY_DEFAULT
    target_machine_id: MachineId | None = Field(default=None, description="only this machine may run it")


class InspectionUpdate(BaseModel):
    """PATCH: the fields given change, the others stay; `target_machine_id` takes null to clear."""

    model_config = ConfigDict(extra="forbid")

    name: Omittable[Name] = None
    description: Omittable[Description] = None
    inspection_type: Omittable[TypeName] = None
    pipeline_config: Omittable[PipelineConfig] = None
    priority: Omittable[Priority] = None
    target_machine_id: MachineId | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> InspectionUpdate:
        nulled = [name for name in self.model_fields_set if getattr(self, name) is None and name != "target_machine_id"]
        if nulled:
            raise ValueError(f"{', '.join(sorted(nulled))} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, as `InspectionWrite.model_dump(by_alias=True)` would give them."""
        return self.model_dump(include=self.model_fields_set, by_alias=True)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Text, Field(max_length=500)] | None = None


class InspectionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["ins_xyz789abc123"])
    name: str
    description: str
    inspection_type: str
    pipeline_config: dict[str, Any]
    priority: int
    status: InspectionStatus
    target_machine_id: str | None
    assigned_machine_id: str | None
    dispatch_attempts: int
    last_dispatch_error: str | None
    error_message: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime
    assigned_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Inspection) -> InspectionRead:
        return cls.model_validate(row)


class StatusChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: InspectionStatus | None
    to_status: InspectionStatus
    machine_id: str | None
    actor: str
    reason: str | None
    changed_at: datetime


class ResultRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    machine_id: str
    status: str
    results: dict[str, Any]
    error_message: str | None
    processing_time_seconds: float | None
    reported_at: datetime | None
    received_at: datetime


class InspectionDetail(InspectionRead):
    """An inspection with every move of its status (oldest first) and the results machines reported."""

    history: list[StatusChangeRead]
    results: list[ResultRead]

    @classmethod
    def build(
        cls, row: Inspection, history: list[InspectionStatusChange], results: list[InspectionResult]
    ) -> InspectionDetail:
        return cls(
            **InspectionRead.of(row).model_dump(),
            history=[StatusChangeRead.model_validate(change) for change in history],
            results=[ResultRead.model_validate(result) for result in results],
        )


class InspectionFilters(BaseModel):
    status: InspectionStatus | None = None
    machine_id: str | None = None
    inspection_type: str | None = None
    created_after: datetime | None = None


async def inspection_filters(
    status: Annotated[InspectionStatus | None, Query(description="one status of the flow")] = None,
    machine_id: Annotated[MachineId | None, Query(description="assigned to this machine or targeting it")] = None,
    inspection_type: Annotated[TypeName | None, Query(description="of this type")] = None,
    created_after: Annotated[DateTime | None, Query(description="created at or after this instant")] = None,
) -> InspectionFilters:
    return InspectionFilters(
        status=status, machine_id=machine_id, inspection_type=inspection_type, created_after=created_after
    )


InspectionFilterParams = Annotated[InspectionFilters, Depends(inspection_filters)]
InspectionSort = Literal["-created_at", "created_at", "priority"]
"""`-created_at` newest first (the default); `priority` in queue order: priority, then longest queued first."""
