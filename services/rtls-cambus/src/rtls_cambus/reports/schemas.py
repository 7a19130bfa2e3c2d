"""Query parameters and rows of the reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from mirante.types import DateTime, Id64
from rtls_cambus.fields import Severity
from rtls_cambus.reports.periods import BucketSize

PeriodStart = Annotated[DateTime, Query(alias="from", description="start of the period (RFC 3339 with offset)")]
PeriodEnd = Annotated[
    DateTime, Query(alias="to", description="end of the period, excluded (RFC 3339 with offset); after `from`")
]
BuildingFilter = Annotated[Id64 | None, Query(description="only presence in this building")]
FloorFilter = Annotated[Id64 | None, Query(description="only presence on this floor")]
ZoneFilter = Annotated[Id64 | None, Query(description="only presence in this zone")]
PersonFilter = Annotated[Id64 | None, Query(description="only this person")]
GroupFilter = Annotated[Id64 | None, Query(description="only people who are members of this person group now")]
BucketParam = Annotated[BucketSize, Query(description="length of a time bucket: a wall-clock hour or day")]
TimeZoneParam = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
        description="IANA time zone whose wall clock the buckets follow, e.g. UTC or America/Sao_Paulo",
    ),
]
SeverityFilter = Annotated[Severity | None, Query(description="only incidents of this severity")]
SupportGroupFilter = Annotated[Id64 | None, Query(description="only incidents of this support group")]
IncidentBuildingFilter = Annotated[Id64 | None, Query(description="only incidents in this building")]
IncidentFloorFilter = Annotated[Id64 | None, Query(description="only incidents on this floor")]
IncidentZoneFilter = Annotated[Id64 | None, Query(description="only incidents in this zone")]


class PersonPresence(BaseModel):
    """A person's time in zones within the period (sessions cut to it)."""

    person_id: int
    person_name: str | None = Field(description="null when the person was deleted since")
    sessions: int = Field(description="presence sessions overlapping the period")
    zones: int = Field(description="distinct zones they were in")
    seconds: int = Field(description="time in zones within the period, summed over the sessions")
    first_seen_at: datetime = Field(description="start of their first session, or the period's start")
    last_seen_at: datetime = Field(description="end of their last session, the period's end or now if earlier")


class ZonePresence(BaseModel):
    """Presence in one zone within the period (sessions cut to it)."""

    zone_id: int
    zone_name: str | None = Field(description="null when the zone was deleted since")
    zone_restricted: bool | None
    floor_id: int | None
    floor_name: str | None
    building_id: int | None
    building_name: str | None
    sessions: int
    people: int = Field(description="distinct people")
    seconds: int = Field(description="person-seconds: the sessions' time within the period, summed")
    average_seconds: float = Field(description="mean time of a session within the period")
    longest_seconds: int = Field(description="the longest session's time within the period")


class OccupancyBucket(BaseModel):
    """One zone in one time bucket."""

    bucket_start: datetime
    bucket_end: datetime = Field(description="excluded; the first and last buckets are cut to the period")
    zone_id: int
    zone_name: str | None
    floor_id: int | None
    building_id: int | None
    people: int = Field(description="distinct people present at any time in the bucket")
    person_minutes: float = Field(description="time people spent there in the bucket, summed, in minutes")


class DurationStats(BaseModel):
    """Durations in seconds over the incidents that reached the status; null when none did."""

    count: int
    average_seconds: float | None
    p50_seconds: float | None
    p90_seconds: float | None
    p95_seconds: float | None
    max_seconds: float | None


class IncidentTimes(BaseModel):
    severity: Severity | None = Field(description="null: every severity together")
    incidents: int = Field(description="incidents opened in the period")
    to_acknowledge: DurationStats = Field(description="from opening to the first acknowledgement")
    to_resolve: DurationStats = Field(
        description="from opening to the resolution that held (incidents resolved or closed now; a reopened "
        "incident counts from its last resolution)"
    )


class IncidentTimesReport(BaseModel):
    period_start: datetime
    period_end: datetime
    rows: list[IncidentTimes] = Field(description="one per severity, low to critical, then all together")
