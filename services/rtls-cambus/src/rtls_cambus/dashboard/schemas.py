"""The dashboard's summary as the API answers it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class FloorPeople(BaseModel):
    floor_id: int | None = Field(description="null: present at a gateway placed on no floor")
    floor_name: str | None
    floor_level: int | None
    people: int


class BuildingPeople(BaseModel):
    building_id: int | None = Field(description="null: present at a gateway placed in no building")
    building_name: str | None
    people: int
    floors: list[FloorPeople]


class PeopleOnSite(BaseModel):
    total: int = Field(description="distinct people present now (a person with two tags counts once)")
    fresh_seconds: float = Field(description="a person counts when one of their tags was heard this recently")
    buildings: list[BuildingPeople]


class DeviceCounts(BaseModel):
    total: int
    online: int
    offline: int
    unknown: int = Field(description="never heard since they were registered")


class SeverityCounts(BaseModel):
    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0


class StatusCounts(BaseModel):
    open: int = 0
    acknowledged: int = 0
    in_progress: int = 0


class OpenIncidents(BaseModel):
    total: int = Field(description="incidents not yet resolved: open, acknowledged or in progress")
    by_severity: SeverityCounts
    by_status: StatusCounts


class OpenAlerts(BaseModel):
    total: int = Field(description="alerts not yet resolved (open or acknowledged) within the caller's reach")
    by_severity: SeverityCounts


class DashboardSummary(BaseModel):
    generated_at: datetime
    people_on_site: PeopleOnSite
    gateways: DeviceCounts
    cameras: DeviceCounts
    incidents: OpenIncidents | None = Field(
        description="null for a caller bound to a tenant: incidents span the whole suite, every tenant's among them"
    )
    alerts: OpenAlerts
