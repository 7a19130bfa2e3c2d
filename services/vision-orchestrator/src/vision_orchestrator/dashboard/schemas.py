"""The dashboard's answer, with the contract's field names (and a few more the pages use)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from vision_orchestrator.dashboard.health import Health


class PerformanceMetrics(BaseModel):
    average_processing_time: float | None = Field(
        description="seconds, over the inspections completed in the window (null when none)", examples=[2.1]
    )
    throughput_per_hour: float = Field(
        description="inspections finished (completed or failed) in the window, per hour", examples=[45]
    )
    success_rate: float | None = Field(
        description="percent of the inspections finished in the window that completed (null when none)",
        examples=[96.7],
    )


class Dashboard(BaseModel):
    total_machines: int = Field(examples=[5])
    online_machines: int = Field(description="online or busy", examples=[4])
    maintenance_machines: int = Field(description="in maintenance, whatever their status", examples=[0])
    total_inspections: int = Field(examples=[150])
    pending_inspections: int = Field(examples=[12])
    processing_inspections: int = Field(description="on a machine: assigned or processing", examples=[8])
    completed_inspections: int = Field(examples=[125])
    failed_inspections: int = Field(examples=[5])
    cancelled_inspections: int = Field(examples=[0])
    oldest_pending_queued_at: datetime | None = Field(description="when the oldest pending inspection was queued")
    system_health: Health = Field(examples=["good"])
    health_reasons: list[str] = Field(description="why the health is not good, worst first; empty when good")
    window_minutes: int = Field(description="the recent window performance_metrics cover", examples=[60])
    performance_metrics: PerformanceMetrics
