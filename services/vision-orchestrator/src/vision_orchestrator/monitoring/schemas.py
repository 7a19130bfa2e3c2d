"""Answers of a machine's status and statistics, and the statistics' query."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from mirante.types import Date, DateTime
from mirante.web.errors import ValidationFailedError
from vision_orchestrator.tables import MachineStatus


class MachineStatusRead(BaseModel):
    machine_id: str
    status: MachineStatus
    maintenance: bool
    last_heartbeat: datetime | None
    current_inspections: int
    max_concurrent_inspections: int
    system_info: dict[str, Any] | None = Field(description="from the last heartbeat; null before the first")
    performance_metrics: dict[str, Any] | None = Field(description="from the last heartbeat; null before the first")


class Period(StrEnum):
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"


DEFAULT_SPAN: Final = {
    Period.hour: timedelta(days=1),
    Period.day: timedelta(days=7),
    Period.week: timedelta(weeks=12),
    Period.month: timedelta(days=365),
}
"""The window asked for without `start_date`: 24 hours by hour, a week by day, 12 weeks by week, a year by month."""

MAX_BUCKETS: Final = 2000
APPROXIMATE_SECONDS: Final = {
    Period.hour: 3600,
    Period.day: 86400,
    Period.week: 7 * 86400,
    Period.month: 28 * 86400,
}


class StatisticsWindow(BaseModel):
    period: Period
    start: datetime
    end: datetime


class Figures(BaseModel):
    inspections_completed: int
    inspections_failed: int
    average_processing_time: float | None = Field(description="seconds, as the machines reported it")
    success_rate: float | None = Field(description="percent of finished inspections that completed")
    utilization: float | None = Field(
        description="percent: slot-time held by inspections / (capacity * time of the window)"
    )
    heartbeats: int
    average_cpu_usage: float | None
    average_gpu_usage: float | None


class Bucket(Figures):
    start: datetime
    end: datetime


class MachineStatistics(BaseModel):
    machine_id: str
    period: Period
    start_date: datetime
    end_date: datetime
    max_concurrent_inspections: int
    totals: Figures
    series: list[Bucket] = Field(description="one entry per period within the window, oldest first")


def _instant(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), tzinfo=UTC)


async def statistics_window(
    period: Annotated[Period, Query(description="bucket size of the series: hour, day, week or month")] = Period.day,
    start_date: Annotated[
        DateTime | Date | None, Query(description="RFC 3339 time or a date (UTC midnight); default: see the docs")
    ] = None,
    end_date: Annotated[DateTime | Date | None, Query(description="RFC 3339 time or a date; default now")] = None,
) -> StatisticsWindow:
    end = _instant(end_date) or datetime.now(UTC)
    start = _instant(start_date) or end - DEFAULT_SPAN[period]
    if start >= end:
        raise ValidationFailedError(
            "start_date must be before end_date",
            details=[{"field": "query.start_date", "message": "must be before end_date"}],
        )
    if (end - start).total_seconds() / APPROXIMATE_SECONDS[period] > MAX_BUCKETS:
        raise ValidationFailedError(
            f"the window holds more than {MAX_BUCKETS} periods of a {period.value}: narrow it or take a longer period",
            details=[{"field": "query.period", "message": f"more than {MAX_BUCKETS} buckets"}],
        )
    return StatisticsWindow(period=period, start=start, end=end)


StatisticsQuery = Annotated[StatisticsWindow, Depends(statistics_window)]
