"""Telemetry queries of one tenant: time ranges and buckets resolved and checked, then handed to the repository.

Every function expects a session (or connection) already scoped to the tenant (`TenantScope`, `enter_tenant`).
Bad requests raise `ValidationFailedError` (422) with a message saying what to change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.errors import ValidationFailedError
from telemetry_ingest.queries import repository
from telemetry_ingest.queries.buckets import BucketGrid, InvalidBucketError, bucket_grid, parse_bucket
from telemetry_ingest.queries.export import ExportPlan
from telemetry_ingest.queries.repository import (
    AggregatePage,
    Fill,
    Order,
    Reading,
    ReadingFilter,
    ReadingStats,
    RejectedFilter,
    RejectedReading,
)
from telemetry_ingest.queries.schemas import ExportKind

DEFAULT_RANGE = timedelta(hours=24)
MAX_FILLED_BUCKETS = 1_000_000
"""Gap filling materialises series x buckets rows; beyond this many the query is refused."""


def _invalid(field: str, message: str) -> ValidationFailedError:
    return ValidationFailedError(message, details=[{"field": field, "message": message}])


def resolve_range(
    start: datetime | None, end: datetime | None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """`[start, end)` with the defaults applied: `end` is now (or `start` + 24 h), `start` is `end` - 24 h.

    Both must be timezone-aware (`mirante.types.DateTime` keeps their years far enough inside Python's for the
    defaults and the bucket arithmetic); 422 unless `start` is before `end`.
    """
    if end is None:
        end = start + DEFAULT_RANGE if start is not None else (now or datetime.now(UTC))
    if start is None:
        start = end - DEFAULT_RANGE
    if start >= end:
        raise _invalid("from", f"`from` ({start.isoformat()}) must be before `to` ({end.isoformat()})")
    return start, end


def reading_filter(
    device: str | None, sensor: str | None, start: datetime | None, end: datetime | None, *, now: datetime | None = None
) -> ReadingFilter:
    """The readings filter of the request's parameters (range defaults applied, checked)."""
    start, end = resolve_range(start, end, now=now)
    return ReadingFilter(start=start, end=end, device=device, sensor=sensor)


def bucket_grid_for(filters: ReadingFilter, bucket: str) -> BucketGrid:
    """The buckets of size `bucket` covering the filter's range; 422 for a bad bucket or too many buckets."""
    try:
        return bucket_grid(filters.start, filters.end, parse_bucket(bucket))
    except InvalidBucketError as error:
        raise _invalid("bucket", str(error)) from None


def max_series(grid: BucketGrid) -> int:
    """The most series gap filling may cover with `grid`."""
    return max(MAX_FILLED_BUCKETS // grid.count, 1)


def too_many_filled_buckets(series: int, grid: BucketGrid) -> ValidationFailedError:
    return _invalid(
        "fill",
        f"gap filling would produce {series:,} series x {grid.count:,} buckets, more than "
        f"{MAX_FILLED_BUCKETS:,}: filter by device or sensor, use a larger bucket or a shorter range",
    )


async def aggregates(
    session: AsyncSession,
    filters: ReadingFilter,
    grid: BucketGrid,
    *,
    fill: Fill,
    offset: int,
    limit: int,
    order: Order = "desc",
) -> AggregatePage:
    """One page of buckets in `order`, with the exact count; 422 when gap filling would be too large."""
    cap = max_series(grid)
    await repository.tune_for_analytics(session)
    page = await repository.aggregate_page(
        session, filters, grid, fill=fill, max_series=cap, offset=offset, limit=limit, order=order
    )
    if fill != "none" and page.series > cap:
        raise too_many_filled_buckets(page.series, grid)
    return page


async def check_fill_size(session: AsyncSession, filters: ReadingFilter, grid: BucketGrid) -> None:
    """422 when gap filling `grid` over the matching series would exceed `MAX_FILLED_BUCKETS` (before an export)."""
    cap = max_series(grid)
    await repository.tune_for_analytics(session)
    series = await repository.count_series(session, filters, at_most=cap + 1)
    if series > cap:
        raise too_many_filled_buckets(series, grid)


async def readings(
    session: AsyncSession, filters: ReadingFilter, *, offset: int, limit: int
) -> tuple[list[Reading], int]:
    """One page of raw readings, newest first, and the exact number matching."""
    await repository.tune_for_analytics(session)
    rows = await repository.reading_page(session, filters, offset=offset, limit=limit)
    # Not `mirante.db.paginate`: a window count over raw readings makes the page read and sort every matching
    # row, where the page alone stops after `limit` rows of the partitions' index scans. The count runs apart,
    # and not at all when a first page is not full.
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)
    return rows, await repository.count_readings(session, filters)


async def stats(session: AsyncSession, filters: ReadingFilter) -> ReadingStats:
    """Count, mean, extremes, first and last reading of the matching readings."""
    await repository.tune_for_analytics(session)
    return await repository.reading_stats(session, filters)


async def latest(
    session: AsyncSession, *, device: str | None, sensor: str | None, offset: int, limit: int
) -> tuple[list[Reading], int]:
    """The newest reading of each matching series, by device then sensor, and how many series match."""
    return await repository.latest_page(session, device=device, sensor=sensor, offset=offset, limit=limit)


async def rejected(
    session: AsyncSession, filters: RejectedFilter, *, offset: int, limit: int
) -> tuple[list[RejectedReading], int]:
    """Rejected readings, most recently received first, and how many match; 422 for an empty time range."""
    if filters.start is not None and filters.end is not None and filters.start >= filters.end:
        raise _invalid("from", f"`from` ({filters.start.isoformat()}) must be before `to` ({filters.end.isoformat()})")
    return await repository.rejected_page(session, filters, offset=offset, limit=limit)


async def plan_export(
    session: AsyncSession,
    schema: str,
    filters: ReadingFilter,
    *,
    kind: ExportKind,
    bucket: str,
    fill: Fill,
    max_rows: int,
    order: Order = "desc",
) -> ExportPlan:
    """A checked export of `schema`'s readings (`kind="raw"`) or of their aggregates by `bucket` with `fill`.

    Everything that can be refused is refused here (422), before any byte of the file is sent.
    """
    if kind == "raw":
        return ExportPlan(schema=schema, kind="raw", filters=filters, max_rows=max_rows)
    grid = bucket_grid_for(filters, bucket)
    if fill != "none":
        await check_fill_size(session, filters, grid)
    return ExportPlan(
        schema=schema,
        kind="aggregates",
        filters=filters,
        max_rows=max_rows,
        grid=grid,
        fill=fill,
        max_series=max_series(grid),
        order=order,
    )
