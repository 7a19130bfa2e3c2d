"""The alerts report: alerts raised in a date range, counted per period, kind and severity; JSON or a CSV stream.

Periods start at midnight (or at the hour, the Monday, the first of the month) in the report's time zone, so a
day is the reader's day. The CSV is produced on a connection of its own, in a read-only transaction, row by row
from a server-side cursor, after the request has checked access and parameters.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from rtls_cambus.alerts.errors import ReportRangeError
from rtls_cambus.alerts.models import AlertEvent
from rtls_cambus.alerts.schedule import timezone_problem
from rtls_cambus.alerts.schemas import AlertReport, AlertReportRow, Bucket

DEFAULT_DAYS: Final = 30
MAX_PERIODS: Final = 10_000
CSV_COLUMNS: Final = ("period_start", "kind", "severity", "count")
_PERIOD_SECONDS: Final = {Bucket.hour: 3600, Bucket.day: 86_400, Bucket.week: 7 * 86_400, Bucket.month: 28 * 86_400}
_CHUNK_ROWS: Final = 1000


@dataclass(frozen=True)
class ReportRange:
    """A checked report request."""

    since: datetime
    until: datetime
    bucket: Bucket
    timezone: str
    reach: str | None
    kind: str | None = None
    severity: str | None = None
    rule_id: int | None = None


def checked_range(
    since: datetime | None,
    until: datetime | None,
    bucket: Bucket,
    timezone: str,
    reach: str | None,
    *,
    kind: str | None = None,
    severity: str | None = None,
    rule_id: int | None = None,
) -> ReportRange:
    """The request with its defaults (the 30 days before `to`, `to` now); 422 for a range that ends before it
    starts, one of more than `MAX_PERIODS` periods, or an unknown time zone."""
    if problem := timezone_problem(timezone):
        raise ReportRangeError(f"timezone: {problem}")
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=DEFAULT_DAYS)
    if until <= since:
        raise ReportRangeError("`to` must be after `from`")
    if (until - since).total_seconds() / _PERIOD_SECONDS[bucket] > MAX_PERIODS:
        raise ReportRangeError(
            f"the range holds more than {MAX_PERIODS:,} periods of a {bucket.value}: use a longer bucket"
        )
    return ReportRange(since, until, bucket, timezone, reach, kind, severity, rule_id)


def _query(report: ReportRange) -> Select[Any]:
    period = func.date_trunc(report.bucket.value, AlertEvent.created_at, report.timezone).label("period_start")
    query = (
        select(period, AlertEvent.kind, AlertEvent.severity, func.count().label("count"))
        .where(AlertEvent.created_at >= report.since, AlertEvent.created_at < report.until)
        .group_by(period, AlertEvent.kind, AlertEvent.severity)
        .order_by(period, AlertEvent.kind, AlertEvent.severity)
    )
    if report.reach is not None:
        query = query.where(AlertEvent.tenant == report.reach)
    for column, value in (
        (AlertEvent.kind, report.kind),
        (AlertEvent.severity, report.severity),
        (AlertEvent.rule_id, report.rule_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


async def alert_report(session: AsyncSession, report: ReportRange) -> AlertReport:
    zone = ZoneInfo(report.timezone)
    rows = [
        AlertReportRow(period_start=period.astimezone(zone), kind=kind, severity=severity, count=count)
        for period, kind, severity, count in await session.execute(_query(report))
    ]
    by_kind: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    for row in rows:
        by_kind[row.kind.value] += row.count
        by_severity[row.severity.value] += row.count
    return AlertReport(
        period_from=report.since,
        period_to=report.until,
        bucket=report.bucket,
        timezone=report.timezone,
        total=sum(by_kind.values()),
        by_kind=dict(sorted(by_kind.items())),
        by_severity=dict(sorted(by_severity.items())),
        rows=rows,
    )


def _csv(lines: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue().encode()


async def alert_report_csv(engine: AsyncEngine, report: ReportRange) -> AsyncGenerator[bytes, None]:
    """The report as CSV: a header line, then one line per period, kind and severity, oldest period first."""
    zone = ZoneInfo(report.timezone)
    async with engine.connect() as connection, connection.begin():
        await connection.execute(text("SET TRANSACTION READ ONLY"))
        yield _csv([CSV_COLUMNS])
        result = await connection.stream(_query(report).execution_options(yield_per=_CHUNK_ROWS))
        async for chunk in result.partitions(_CHUNK_ROWS):
            yield _csv([(period.astimezone(zone).isoformat(), *rest) for period, *rest in chunk])
