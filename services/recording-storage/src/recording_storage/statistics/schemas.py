"""Response body and query of the upload statistics."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from mirante.types import Int32

MAX_DAYS = 366

DaysQuery = Annotated[Int32, Query(ge=1, le=MAX_DAYS, description="how many UTC days, today included")]


class DayFigures(BaseModel):
    day: date = Field(description="a UTC day")
    recordings: int = Field(description="recordings finished that day")
    bytes: int = Field(description="their bytes, video plus metadata")
    failed_sessions: int = Field(
        description="upload sessions that expired unfinished that day (see failures_known_since)"
    )


class InProgressFigures(BaseModel):
    sessions: int = Field(description="open sessions before their expiry")
    declared_bytes: int = Field(description="bytes they declared (videos, and metadata where declared)")
    received_bytes: int = Field(description="bytes received so far")
    oldest_created_at: datetime | None = Field(description="when the oldest of them began")


class Totals(BaseModel):
    recordings: int
    bytes: int
    failed_sessions: int


class UploadStatistics(BaseModel):
    """Volume per day, failures and uploads in progress, within the caller's tenant reach."""

    generated_at: datetime
    days: list[DayFigures] = Field(description="one entry per UTC day, oldest first, days without uploads included")
    totals: Totals
    in_progress: InProgressFigures
    failures_known_since: datetime = Field(
        description="expired sessions are kept one session lifetime after expiring; failures before this are no "
        "longer counted"
    )
