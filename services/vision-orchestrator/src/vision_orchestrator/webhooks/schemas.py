"""The bodies machines post, as the API contract names their fields. Unknown fields are ignored, so a machine
newer than the orchestrator can still report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mirante.types import DateTime, Int32, JsonObject, Text
from vision_orchestrator.identifiers import InspectionId, MachineId

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
Celsius = Annotated[float, Field(ge=-100, le=300, allow_inf_nan=False)]


class _Report(BaseModel):
    model_config = ConfigDict(extra="ignore")

    machine_id: MachineId = Field(description="the reporting machine; must be the caller")
    timestamp: DateTime | None = Field(default=None, description="the machine's clock, RFC 3339")


class SystemInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cpu_usage: Percent | None = None
    memory_usage: Percent | None = None
    gpu_usage: Percent | None = None
    temperature: Celsius | None = None


class PerformanceMetrics(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inspections_per_hour: NonNegative | None = None
    average_processing_time: NonNegative | None = Field(default=None, description="seconds")
    success_rate: Percent | None = None


class HeartbeatReport(_Report):
    status: Literal["online", "busy"] = "online"
    system_info: SystemInfo = SystemInfo()
    performance_metrics: PerformanceMetrics = PerformanceMetrics()


class StatusReport(_Report):
    status: Literal["online", "busy", "offline"]
    current_inspections: Annotated[Int32, Field(ge=0)] = Field(description="inspections running on the machine")


class ResultReport(_Report):
    inspection_id: InspectionId
    status: Literal["completed", "failed"]
    results: JsonObject = Field(default={}, description="the findings, with `processing_time` in seconds")
    error_message: Text | None = None
    attempt: Annotated[Int32, Field(ge=1)] = Field(
        default=1, description="the assignment the result answers, echoed by the machine"
    )


class HeartbeatTaken(BaseModel):
    machine_id: str
    status: str
    received_at: datetime


class StatusTaken(BaseModel):
    machine_id: str
    status: str = Field(description="the machine's status as the orchestrator now holds it")


class ResultTaken(BaseModel):
    inspection_id: str
    status: str = Field(description="completed or failed")
    attempt: int
    duplicate: bool = Field(description="the same result (inspection and attempt) was taken before")
