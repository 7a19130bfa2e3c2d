"""Reports as JSON pages and as CSV files: the same statement read a page at a time, or whole through a cursor."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Row, Select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate
from mirante.web.csv_export import csv_lines, number_cell, stream_chunks, text_cell, time_cell
from rtls_cambus.fields import Severity
from rtls_cambus.reports import repository
from rtls_cambus.reports.periods import BucketSize, Period, buckets, time_zone
from rtls_cambus.reports.repository import IncidentFilters, PresenceFilters
from rtls_cambus.reports.schemas import (
    DurationStats,
    IncidentTimes,
    IncidentTimesReport,
    OccupancyBucket,
    PersonPresence,
    ZonePresence,
)

EXPORT_LIMIT: Final = "the report_export_max_rows setting"


@dataclass(frozen=True)
class Report:
    """A report's statement, how one of its rows reads as JSON and as a CSV line, and its CSV columns."""

    statement: Select[Any]
    model: Callable[[Row[Any]], Any]
    columns: Sequence[str]
    line: Callable[[Row[Any]], Sequence[Any]]

    async def page(self, session: AsyncSession, *, offset: int, limit: int) -> tuple[list[Any], int]:
        rows, count = await paginate(session, self.statement, offset=offset, limit=limit)
        return [self.model(row) for row in rows], count

    def csv(self, session: AsyncSession, *, max_rows: int) -> AsyncGenerator[bytes, None]:
        """The whole report as CSV, read through a cursor on `session` while the body is sent."""
        chunks = stream_chunks(session, self.statement)
        return csv_lines(self.columns, chunks, self.line, max_rows=max_rows, limit=EXPORT_LIMIT)


def _number(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


PERSON_COLUMNS: Final = (
    "person_id",
    "person_name",
    "sessions",
    "zones",
    "seconds",
    "first_seen_at",
    "last_seen_at",
)


def _person_line(row: Row[Any]) -> list[Any]:
    return [
        row.person_id,
        text_cell(row.person_name),
        row.sessions,
        row.zones,
        row.seconds,
        time_cell(row.first_seen_at),
        time_cell(row.last_seen_at),
    ]


def presence_by_person(period: Period, filters: PresenceFilters) -> Report:
    return Report(
        repository.presence_by_person(period, filters, datetime.now(UTC)),
        lambda row: PersonPresence.model_validate(row._mapping),
        PERSON_COLUMNS,
        _person_line,
    )


ZONE_COLUMNS: Final = (
    "zone_id",
    "zone_name",
    "zone_restricted",
    "floor_id",
    "floor_name",
    "building_id",
    "building_name",
    "sessions",
    "people",
    "seconds",
    "average_seconds",
    "longest_seconds",
)


def _flag(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


def _zone_line(row: Row[Any]) -> list[Any]:
    return [
        row.zone_id,
        text_cell(row.zone_name),
        _flag(row.zone_restricted),
        row.floor_id or "",
        text_cell(row.floor_name),
        row.building_id or "",
        text_cell(row.building_name),
        row.sessions,
        row.people,
        row.seconds,
        number_cell(_number(row.average_seconds)),
        row.longest_seconds,
    ]


def _zone_model(row: Row[Any]) -> ZonePresence:
    return ZonePresence.model_validate({**row._mapping, "average_seconds": _number(row.average_seconds)})


def presence_by_zone(period: Period, filters: PresenceFilters) -> Report:
    return Report(
        repository.presence_by_zone(period, filters, datetime.now(UTC)), _zone_model, ZONE_COLUMNS, _zone_line
    )


OCCUPANCY_COLUMNS: Final = (
    "bucket_start",
    "bucket_end",
    "zone_id",
    "zone_name",
    "floor_id",
    "building_id",
    "people",
    "person_minutes",
)


def _occupancy_line(row: Row[Any]) -> list[Any]:
    return [
        time_cell(row.bucket_start),
        time_cell(row.bucket_end),
        row.zone_id,
        text_cell(row.zone_name),
        row.floor_id or "",
        row.building_id or "",
        row.people,
        number_cell(_number(row.person_minutes)),
    ]


def _occupancy_model(row: Row[Any]) -> OccupancyBucket:
    return OccupancyBucket.model_validate({**row._mapping, "person_minutes": _number(row.person_minutes)})


def occupancy(period: Period, filters: PresenceFilters, size: BucketSize, zone_name: str) -> Report:
    """Occupancy per `size` bucket on the wall clock of `zone_name` (422 for an unknown time zone)."""
    grid = buckets(period, size, time_zone(zone_name))
    statement = repository.occupancy(period, filters, datetime.now(UTC), grid)
    return Report(statement, _occupancy_model, OCCUPANCY_COLUMNS, _occupancy_line)


def _stats(row: Row[Any], name: str) -> DurationStats:
    percentiles = getattr(row, f"{name}_percentiles") or [None, None, None]
    return DurationStats(
        count=getattr(row, f"{name}_count"),
        average_seconds=_number(getattr(row, f"{name}_average")),
        p50_seconds=_number(percentiles[0]),
        p90_seconds=_number(percentiles[1]),
        p95_seconds=_number(percentiles[2]),
        max_seconds=_number(getattr(row, f"{name}_max")),
    )


def _no_times() -> DurationStats:
    return DurationStats(
        count=0, average_seconds=None, p50_seconds=None, p90_seconds=None, p95_seconds=None, max_seconds=None
    )


async def incident_times(session: AsyncSession, period: Period, filters: IncidentFilters) -> IncidentTimesReport:
    """One row per severity (zeros where none was opened) and one for all of them."""
    found: dict[Severity | None, IncidentTimes] = {}
    for row in await session.execute(repository.incident_times(period, filters)):
        severity = None if row.all_severities else Severity(row.severity)
        found[severity] = IncidentTimes(
            severity=severity,
            incidents=row.incidents,
            to_acknowledge=_stats(row, "to_acknowledge"),
            to_resolve=_stats(row, "to_resolve"),
        )
    rows = [
        found.get(severity)
        or IncidentTimes(severity=severity, incidents=0, to_acknowledge=_no_times(), to_resolve=_no_times())
        for severity in (*Severity, None)
    ]
    return IncidentTimesReport(period_start=period.start, period_end=period.end, rows=rows)


INCIDENT_TIME_COLUMNS: Final = (
    "severity",
    "incidents",
    *(
        f"{stage}_{measure}"
        for stage in ("to_acknowledge", "to_resolve")
        for measure in ("count", "average_seconds", "p50_seconds", "p90_seconds", "p95_seconds", "max_seconds")
    ),
)


def incident_times_lines(report: IncidentTimesReport) -> list[list[Any]]:
    """The report's rows as CSV lines (`severity` is `all` for every severity together)."""
    lines = []
    for row in report.rows:
        line: list[Any] = [row.severity.value if row.severity else "all", row.incidents]
        for stats in (row.to_acknowledge, row.to_resolve):
            line += [stats.count, *(number_cell(value) for value in _measures(stats))]
        lines.append(line)
    return lines


def _measures(stats: DurationStats) -> tuple[float | None, ...]:
    return (stats.average_seconds, stats.p50_seconds, stats.p90_seconds, stats.p95_seconds, stats.max_seconds)
