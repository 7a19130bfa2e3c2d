"""Request dependencies of the reports: the checked period and the filters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from rtls_cambus.deps import AppSettings
from rtls_cambus.reports.periods import Period
from rtls_cambus.reports.repository import IncidentFilters, PresenceFilters
from rtls_cambus.reports.schemas import (
    BuildingFilter,
    FloorFilter,
    GroupFilter,
    IncidentBuildingFilter,
    IncidentFloorFilter,
    IncidentZoneFilter,
    PeriodEnd,
    PeriodStart,
    PersonFilter,
    SeverityFilter,
    SupportGroupFilter,
    ZoneFilter,
)


async def report_period(settings: AppSettings, start: PeriodStart, end: PeriodEnd) -> Period:
    """`[from, to)`; 422 when `to` is not after `from` or the period is longer than `report_max_days`."""
    return Period.checked(start, end, max_days=settings.report_max_days)


async def presence_filters(
    building_id: BuildingFilter = None,
    floor_id: FloorFilter = None,
    zone_id: ZoneFilter = None,
    person_id: PersonFilter = None,
    group_id: GroupFilter = None,
) -> PresenceFilters:
    return PresenceFilters(
        building_id=building_id, floor_id=floor_id, zone_id=zone_id, person_id=person_id, group_id=group_id
    )


async def incident_filters(
    severity: SeverityFilter = None,
    support_group_id: SupportGroupFilter = None,
    building_id: IncidentBuildingFilter = None,
    floor_id: IncidentFloorFilter = None,
    zone_id: IncidentZoneFilter = None,
) -> IncidentFilters:
    return IncidentFilters(
        severity=severity.value if severity else None,
        support_group_id=support_group_id,
        building_id=building_id,
        floor_id=floor_id,
        zone_id=zone_id,
    )


ReportPeriod = Annotated[Period, Depends(report_period)]
PresenceFilterParams = Annotated[PresenceFilters, Depends(presence_filters)]
IncidentFilterParams = Annotated[IncidentFilters, Depends(incident_filters)]
