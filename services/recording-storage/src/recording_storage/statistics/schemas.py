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
        description="failed uploads that day: sessions that expired unfinished (on the day they expired) and "
        "finishes refused for what the files held (422)"
    )
    failures_by_reason: dict[str, int] = Field(
        default_factory=dict,
        description="failed_sessions by reason: expired, checksum_mismatch, metadata_invalid; reasons without "
        "failures are left out",
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
    failures_by_reason: dict[str, int] = Field(default_factory=dict, description="failed_sessions by reason")


class UploadStatistics(BaseModel):
    """Volume per day, failures and uploads in progress, within the caller's tenant reach."""

    generated_at: datetime
    days: list[DayFigures] = Field(description="one entry per UTC day, oldest first, days without uploads included")
    totals: Totals
    in_progress: InProgressFigures
    failures_known_since: datetime = Field(
        description="the start of the UTC day the failure tally began; failures before it are not counted"
    )
