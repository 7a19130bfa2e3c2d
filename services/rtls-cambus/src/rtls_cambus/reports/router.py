"""HTTP endpoints of the reports: `/api/v1/reports/...`, viewers and up.

Each report answers JSON (a page of rows, or for incident times the whole small table) and, at the same path
with `.csv`, a CSV file of every row, streamed from a cursor while it is sent. Every report needs a period,
`from` (included) and `to` (excluded), at most `RTLS_CAMBUS_REPORT_MAX_DAYS` long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from mirante.auth import StreamingSession
from mirante.db import Session
from mirante.web.csv_export import csv_bytes, csv_download, csv_responses
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import AppSettings, SuiteViewer, Viewer
from rtls_cambus.reports import service
from rtls_cambus.reports.deps import IncidentFilterParams, PresenceFilterParams, ReportPeriod
from rtls_cambus.reports.periods import BucketSize, Period
from rtls_cambus.reports.schemas import (
    BucketParam,
    IncidentTimesReport,
    OccupancyBucket,
    PersonPresence,
    TimeZoneParam,
    ZonePresence,
)
from rtls_cambus.reports.service import Report

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Responses = dict[int | str, dict[str, Any]]
PERIOD_REFUSED: Responses = {422: {"description": "`to` not after `from`, a period longer than the setting allows"}}
OCCUPANCY_REFUSED: Responses = {422: {"description": "a period refused as for every report, or an unknown time zone"}}
CSV_NOTE = "the rows as CSV: a header line, one line per row, and when the row cap cut it a `# truncated:` line"


def _download(
    report: Report, session: StreamingSession, settings: AppSettings, name: str, period: Period
) -> StreamingResponse:
    body = report.csv(session, max_rows=settings.report_export_max_rows)
    return csv_download(body, f"rtls-{name}-{period.stamp()}.csv", row_limit=settings.report_export_max_rows)


@router.get("/presence/people", responses=PERIOD_REFUSED)
async def presence_by_person(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    period: ReportPeriod,
    filters: PresenceFilterParams,
) -> Page[PersonPresence]:
    """Each person's time in zones within the period, most time first: sessions, distinct zones, seconds, and
    the first and last moment seen. Sessions crossing the period's edges count only their part inside it."""
    rows, count = await service.presence_by_person(period, filters).page(
        session, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(rows, count)


@router.get(
    "/presence/people.csv",
    response_class=StreamingResponse,
    responses={**csv_responses(CSV_NOTE), **PERIOD_REFUSED},
)
async def export_presence_by_person(
    session: StreamingSession,
    principal: Viewer,
    settings: AppSettings,
    period: ReportPeriod,
    filters: PresenceFilterParams,
) -> StreamingResponse:
    """`GET /reports/presence/people` as a CSV file of every row (same columns, same order)."""
    return _download(service.presence_by_person(period, filters), session, settings, "presence-people", period)


@router.get("/presence/zones", responses=PERIOD_REFUSED)
async def presence_by_zone(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    period: ReportPeriod,
    filters: PresenceFilterParams,
) -> Page[ZonePresence]:
    """Each zone's presence within the period, most time first: sessions, distinct people, person-seconds, the
    mean and the longest session. With `person_id`, one person's time per zone."""
    rows, count = await service.presence_by_zone(period, filters).page(
        session, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(rows, count)


@router.get(
    "/presence/zones.csv",
    response_class=StreamingResponse,
    responses={**csv_responses(CSV_NOTE), **PERIOD_REFUSED},
)
async def export_presence_by_zone(
    session: StreamingSession,
    principal: Viewer,
    settings: AppSettings,
    period: ReportPeriod,
    filters: PresenceFilterParams,
) -> StreamingResponse:
    """`GET /reports/presence/zones` as a CSV file of every row (same columns, same order)."""
    return _download(service.presence_by_zone(period, filters), session, settings, "presence-zones", period)


@router.get("/occupancy", responses=OCCUPANCY_REFUSED)
async def zone_occupancy(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    period: ReportPeriod,
    filters: PresenceFilterParams,
    bucket: BucketParam = BucketSize.hour,
    tz: TimeZoneParam = "UTC",
) -> Page[OccupancyBucket]:
    """Zone occupancy over time: for each hour or day of the period (on the wall clock of `tz`) and each zone
    someone was in, the distinct people and the person-minutes. Buckets are in time order, zones by id within
    one; the first and last buckets are cut to the period."""
    rows, count = await service.occupancy(period, filters, bucket, tz).page(
        session, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(rows, count)


@router.get(
    "/occupancy.csv",
    response_class=StreamingResponse,
    responses={**csv_responses(CSV_NOTE), **OCCUPANCY_REFUSED},
)
async def export_zone_occupancy(
    session: StreamingSession,
    principal: Viewer,
    settings: AppSettings,
    period: ReportPeriod,
    filters: PresenceFilterParams,
    bucket: BucketParam = BucketSize.hour,
    tz: TimeZoneParam = "UTC",
) -> StreamingResponse:
    """`GET /reports/occupancy` as a CSV file of every row (same columns, same order)."""
    return _download(service.occupancy(period, filters, bucket, tz), session, settings, "occupancy", period)


@router.get("/incidents/response-times", responses=PERIOD_REFUSED)
async def incident_response_times(
    session: Session, principal: SuiteViewer, period: ReportPeriod, filters: IncidentFilterParams
) -> IncidentTimesReport:
    """For incidents opened in the period, per severity and for all together: how long until acknowledged and
    until resolved (mean, p50, p90, p95, maximum, in seconds), from their status history."""
    return await service.incident_times(session, period, filters)


@router.get(
    "/incidents/response-times.csv",
    response_class=StreamingResponse,
    responses={**csv_responses(CSV_NOTE), **PERIOD_REFUSED},
)
async def export_incident_response_times(
    session: Session, principal: SuiteViewer, period: ReportPeriod, filters: IncidentFilterParams
) -> StreamingResponse:
    """`GET /reports/incidents/response-times` as a CSV file: one line per severity, then `all`; columns
    `to_acknowledge_*` and `to_resolve_*` (count, average, p50, p90, p95, max seconds)."""
    report = await service.incident_times(session, period, filters)

    async def body() -> AsyncIterator[bytes]:
        yield csv_bytes([service.INCIDENT_TIME_COLUMNS, *service.incident_times_lines(report)])

    return csv_download(body(), f"rtls-incident-response-times-{period.stamp()}.csv")
