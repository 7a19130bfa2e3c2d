"""The dashboard's summary, put together from two statements."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from rtls_cambus.alerts.repository import open_alerts_by_severity
from rtls_cambus.dashboard import repository
from rtls_cambus.dashboard.repository import BUILDING_ROW, FLOOR_ROW, TOTAL_ROW
from rtls_cambus.dashboard.schemas import (
    BuildingPeople,
    DashboardSummary,
    DeviceCounts,
    FloorPeople,
    OpenAlerts,
    OpenIncidents,
    PeopleOnSite,
    SeverityCounts,
    StatusCounts,
)
from rtls_cambus.positions.engine import EngineParams


def _people(rows: Sequence[Row[Any]], fresh_seconds: float) -> PeopleOnSite:
    total = 0
    buildings: dict[int | None, BuildingPeople] = {}
    for row in rows:
        if row.grouping_level == TOTAL_ROW:
            total = row.people
        elif row.grouping_level == BUILDING_ROW:
            buildings[row.building_id] = BuildingPeople(
                building_id=row.building_id, building_name=row.building_name, people=row.people, floors=[]
            )
    for row in rows:
        if row.grouping_level == FLOOR_ROW:
            buildings[row.building_id].floors.append(
                FloorPeople(
                    floor_id=row.floor_id, floor_name=row.floor_name, floor_level=row.floor_level, people=row.people
                )
            )
    return PeopleOnSite(total=total, fresh_seconds=fresh_seconds, buildings=list(buildings.values()))


def _devices(counts: Counter[tuple[str, str]], kind: str) -> DeviceCounts:
    by_status = {status: counts[kind, status] for status in ("online", "offline", "unknown")}
    return DeviceCounts(total=sum(by_status.values()), **by_status)


async def summary(
    session: AsyncSession, params: EngineParams, *, reach: str | None, suite_wide: bool
) -> DashboardSummary:
    """Everything the dashboard shows, as of now: alerts within `reach` (a tenant, or None for all), incidents only
    for callers of the whole suite (`suite_wide`)."""
    now = datetime.now(UTC)
    people = await repository.people_on_site(session, now - timedelta(seconds=params.fresh_seconds))
    devices: Counter[tuple[str, str]] = Counter()
    severities: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    alerts = await open_alerts_by_severity(session, reach)
    for row in await repository.section_counts(session):
        if row.section == "incident":
            severities[row.key] += row.amount
            statuses[row.detail] += row.amount
        else:
            devices[row.section, row.key] += row.amount
    return DashboardSummary(
        generated_at=now,
        people_on_site=_people(people, params.fresh_seconds),
        gateways=_devices(devices, "gateway"),
        cameras=_devices(devices, "camera"),
        incidents=OpenIncidents(
            total=sum(severities.values()),
            by_severity=SeverityCounts(**severities),
            by_status=StatusCounts(**statuses),
        )
        if suite_wide
        else None,
        alerts=OpenAlerts(total=sum(alerts.values()), by_severity=SeverityCounts(**alerts)),
    )
