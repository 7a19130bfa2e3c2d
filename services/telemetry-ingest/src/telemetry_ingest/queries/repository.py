"""SQL of the telemetry queries, run against one tenant's tables.

Table and column names come from the tables' one description (`tenancy.tables`), unqualified on purpose: they
resolve through the search path, which `enter_tenant` sets for the
transaction (the `TenantScope` dependency does it for request sessions, `export.py` for its own connection). A
query run without a tenant entered fails with "relation does not exist" instead of reading another tenant.

Every readings query bounds `ts` with `ts >= :start AND ts < :end` (a half-open range), which lets PostgreSQL prune
the daily partitions, and filters device and sensor by equality, which the primary key `(device_id, sensor, ts)`
serves. Statements are assembled only from the constant fragments below; values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, Select, TextClause, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mirante.db import paginate
from telemetry_ingest.queries.buckets import BUCKET_ORIGIN, BucketGrid
from telemetry_ingest.tenancy.tables import latest_readings, readings, rejected_readings, sensors

Fill = Literal["none", "null", "previous"]
Order = Literal["asc", "desc"]
"""Bucket order of aggregates: `desc` newest first, `asc` oldest first (then by device and sensor either way)."""
Executor = AsyncSession | AsyncConnection


@dataclass(frozen=True)
class ReadingFilter:
    """Readings of the half-open range `[start, end)`, of one device and/or one sensor when given."""

    start: datetime
    end: datetime
    device: str | None = None
    sensor: str | None = None

    def where(self, alias: str = "r") -> tuple[str, dict[str, Any]]:
        """The WHERE condition on readings aliased `alias`, and its parameters."""
        clauses = [f"{alias}.ts >= :start", f"{alias}.ts < :end"]
        params: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.device is not None:
            clauses.append(f"{alias}.device_id = :device")
            params["device"] = self.device
        if self.sensor is not None:
            clauses.append(f"{alias}.sensor = :sensor")
            params["sensor"] = self.sensor
        return " AND ".join(clauses), params


@dataclass(frozen=True)
class AggregateBucket:
    """One (device, sensor, bucket) group; `filled` rows are empty buckets added by gap filling."""

    device_id: str
    sensor: str
    bucket: datetime
    avg: float | None
    min: float | None
    max: float | None
    last: float | None
    count: int
    first_ts: datetime | None
    last_ts: datetime | None
    filled: bool
    unit: str | None = None
    """the sensor's unit (`sensors.unit`: set by an operator, else the first unit its readings carried)"""


@dataclass(frozen=True)
class AggregatePage:
    """A page of buckets, how many buckets match in all, and how many series (device, sensor) have readings."""

    buckets: list[AggregateBucket]
    total: int
    series: int


@dataclass(frozen=True)
class Reading:
    device_id: str
    sensor: str
    ts: datetime
    value: float
    unit: str | None
    received_at: datetime


@dataclass(frozen=True)
class ReadingStats:
    count: int
    avg: float | None
    min: float | None
    max: float | None
    first: Reading | None
    last: Reading | None


@dataclass(frozen=True)
class RejectedReading:
    id: int
    received_at: datetime
    source: str
    topic: str | None
    device_id: str | None
    sensor: str | None
    reason: str
    payload: str | None


REJECTED_FIELDS = tuple(field.name for field in fields(RejectedReading))


@dataclass(frozen=True)
class RejectedFilter:
    """Rejected readings received in `[start, end)` (either bound optional), by device, sensor, source, reason."""

    start: datetime | None = None
    end: datetime | None = None
    device: str | None = None
    sensor: str | None = None
    source: str | None = None
    reason: str | None = None


AGGREGATE_FIELDS = (
    "device_id",
    "sensor",
    "bucket",
    "avg_value",
    "min_value",
    "max_value",
    "last_value",
    "readings",
    "first_ts",
    "last_ts",
    "filled",
)
"""The columns of every aggregate result, in `AggregateBucket` order (its `unit` comes from `sensors`)."""
AGGREGATE_COLUMNS = ", ".join(AGGREGATE_FIELDS)


def aggregate_order(order: Order, alias: str) -> str:
    """The one bucket order of the API pages and the CSV export: by bucket (`order`), then device and sensor."""
    direction = "DESC" if order == "desc" else "ASC"
    return f"{alias}.bucket {direction}, {alias}.device_id, {alias}.sensor"


def _with_unit(alias: str) -> str:
    """The aggregate columns of `alias` followed by the unit of its sensor (`u`, joined by `_UNIT_JOIN`)."""
    return ", ".join(f"{alias}.{name}" for name in AGGREGATE_FIELDS) + ", u.unit"


_UNIT_JOIN = "LEFT JOIN {sensors} AS u ON u.device_id = {alias}.device_id AND u.sensor = {alias}.sensor"

# `last` is the value of the reading with the greatest ts: the second element of the greatest (epoch, value) pair.
# Epoch seconds as float8 keep microseconds apart until the year 2106, and a series never has two readings at one
# ts (primary key). Unlike an ordered aggregate (`array_agg(value ORDER BY ts)`), this lets PostgreSQL hash the
# groups in one pass instead of sorting every reading first.
_AGGREGATE = """
agg AS MATERIALIZED (
    SELECT r.device_id, r.sensor,
           date_bin(CAST(:stride AS interval), r.ts, CAST(:origin AS timestamptz)) AS bucket,
           avg(r.value) AS avg_value, min(r.value) AS min_value, max(r.value) AS max_value,
           (max(ARRAY[date_part('epoch', r.ts), r.value]))[2] AS last_value,
           count(*) AS readings, min(r.ts) AS first_ts, max(r.ts) AS last_ts
    FROM {readings} AS r
    WHERE {where}
    GROUP BY 1, 2, 3
),
series AS MATERIALIZED (SELECT DISTINCT device_id, sensor FROM agg)"""

_NO_FILL = """,
result AS MATERIALIZED (SELECT agg.*, false AS filled FROM agg)"""

# The grid holds every bucket of the range for every series that has readings in it. It stays empty when that
# would exceed :max_series series (the caller sees `series` above the cap and refuses the query).
_GRID = """,
grid AS (
    SELECT s.device_id, s.sensor, b.bucket
    FROM series AS s
    CROSS JOIN generate_series(
        CAST(:first_bucket AS timestamptz), CAST(:last_bucket AS timestamptz), CAST(:stride AS interval)
    ) AS b(bucket)
    WHERE (SELECT count(*) FROM series) <= :max_series
),
joined AS (
    SELECT g.device_id, g.sensor, g.bucket, a.avg_value, a.min_value, a.max_value, a.last_value,
           coalesce(a.readings, 0) AS readings, a.first_ts, a.last_ts,
           count(a.last_value) OVER (PARTITION BY g.device_id, g.sensor ORDER BY g.bucket) AS run
    FROM grid AS g
    LEFT JOIN agg AS a ON a.device_id = g.device_id AND a.sensor = g.sensor AND a.bucket = g.bucket
)"""

_FILL_NULL = """,
result AS MATERIALIZED (
    SELECT device_id, sensor, bucket, avg_value, min_value, max_value, last_value, readings, first_ts, last_ts,
           readings = 0 AS filled
    FROM joined
)"""

# Locf: `run` counts the non-empty buckets up to each bucket, so a run starts with a non-empty bucket and every
# empty bucket of the run carries that bucket's last value. Empty buckets before the first non-empty one (run 0)
# carry the series' last reading before the range, when there is one.
_FILL_PREVIOUS = """,
seed AS (
    SELECT s.device_id, s.sensor, p.value
    FROM series AS s
    CROSS JOIN LATERAL (
        SELECT r.value FROM {readings} AS r
        WHERE r.device_id = s.device_id AND r.sensor = s.sensor AND r.ts < :start
        ORDER BY r.ts DESC
        LIMIT 1
    ) AS p
),
carried AS (
    SELECT j.*, first_value(j.last_value) OVER (PARTITION BY j.device_id, j.sensor, j.run ORDER BY j.bucket) AS held
    FROM joined AS j
),
result AS MATERIALIZED (
    SELECT c.device_id, c.sensor, c.bucket,
           coalesce(c.avg_value, v.carry) AS avg_value, coalesce(c.min_value, v.carry) AS min_value,
           coalesce(c.max_value, v.carry) AS max_value, coalesce(c.last_value, v.carry) AS last_value,
           c.readings, c.first_ts, c.last_ts, c.readings = 0 AS filled
    FROM carried AS c
    LEFT JOIN seed AS sd ON sd.device_id = c.device_id AND sd.sensor = c.sensor
    CROSS JOIN LATERAL (SELECT CASE WHEN c.run = 0 THEN sd.value ELSE c.held END AS carry) AS v
)"""


def _aggregate_ctes(where: str, fill: Fill) -> str:
    ctes = _AGGREGATE.format(where=where, readings=readings.name)
    if fill == "none":
        return ctes + _NO_FILL
    return ctes + _GRID + (_FILL_NULL if fill == "null" else _FILL_PREVIOUS.format(readings=readings.name))


def _aggregate_params(
    filters: ReadingFilter, grid: BucketGrid, fill: Fill, max_series: int
) -> tuple[str, dict[str, Any]]:
    where, params = filters.where()
    params.update(stride=grid.stride, origin=BUCKET_ORIGIN)
    if fill != "none":
        params.update(first_bucket=grid.first, last_bucket=grid.last, max_series=max_series)
    return _aggregate_ctes(where, fill), params


def _bucket(row: Sequence[Any]) -> AggregateBucket:
    device_id, sensor, bucket, avg, min_, max_, last, count, first_ts, last_ts, filled, unit = row
    return AggregateBucket(
        device_id=device_id,
        sensor=sensor,
        bucket=bucket,
        avg=avg,
        min=min_,
        max=max_,
        last=last,
        count=int(count),
        first_ts=first_ts,
        last_ts=last_ts,
        filled=bool(filled),
        unit=unit,
    )


def aggregate_page_statement(
    filters: ReadingFilter,
    grid: BucketGrid,
    *,
    fill: Fill,
    max_series: int,
    offset: int,
    limit: int,
    order: Order = "desc",
) -> tuple[TextClause, dict[str, Any]]:
    """The statement of `aggregate_page`: the totals, then the page's buckets (one row even past the end)."""
    ctes, params = _aggregate_params(filters, grid, fill, max_series)
    params.update(offset=offset, limit=limit)
    statement = text(
        f"WITH {ctes},\n"  # noqa: S608 - constant fragments; values are bound parameters
        f"page AS (SELECT {AGGREGATE_COLUMNS} FROM result AS r ORDER BY {aggregate_order(order, 'r')} "
        "OFFSET :offset LIMIT :limit)\n"
        "SELECT (SELECT count(*) FROM result) AS total, (SELECT count(*) FROM series) AS series, "
        f"{_with_unit('page')}\n"
        f"FROM (VALUES (1)) AS one(x) LEFT JOIN page ON true {_UNIT_JOIN.format(sensors=sensors.name, alias='page')}\n"
        f"ORDER BY {aggregate_order(order, 'page')}"
    )
    return statement, params


async def aggregate_page(
    session: Executor,
    filters: ReadingFilter,
    grid: BucketGrid,
    *,
    fill: Fill,
    max_series: int,
    offset: int,
    limit: int,
    order: Order = "desc",
) -> AggregatePage:
    """One page of buckets in `aggregate_order(order)`, with the exact number of buckets and of series.

    With gap filling the buckets are `series x grid.count`, unless `series` exceeds `max_series`: then no bucket
    is computed at all and the page is empty (`total` 0), for the caller to refuse.
    """
    statement, params = aggregate_page_statement(
        filters, grid, fill=fill, max_series=max_series, offset=offset, limit=limit, order=order
    )
    rows = (await session.execute(statement, params)).all()
    total, series = int(rows[0][0]), int(rows[0][1])
    buckets = [_bucket(row[2:]) for row in rows if row[2] is not None]
    return AggregatePage(buckets=buckets, total=total, series=series)


def aggregate_export_statement(
    filters: ReadingFilter, grid: BucketGrid, *, fill: Fill, max_series: int, max_rows: int, order: Order = "desc"
) -> tuple[TextClause, dict[str, Any]]:
    """The statement of an aggregates export: at most `max_rows` buckets in the order of the API's pages."""
    ctes, params = _aggregate_params(filters, grid, fill, max_series)
    params["limit"] = max_rows
    statement = text(
        f"WITH {ctes}\n"
        f"SELECT {_with_unit('r')} FROM result AS r {_UNIT_JOIN.format(sensors=sensors.name, alias='r')}\n"
        f"ORDER BY {aggregate_order(order, 'r')} LIMIT :limit"
    )
    return statement, params


ANALYTICS_WORK_MEM = "64MB"


async def tune_for_analytics(session: Executor) -> None:
    """Planner settings for the rest of the transaction: no JIT, and `ANALYTICS_WORK_MEM` for sorts and hashes.

    The planner cannot tell how many distinct buckets `date_bin` yields and overestimates the groups by orders of
    magnitude: past `jit_above_cost` it then spends up to seconds compiling a query that runs in milliseconds, and
    with the default 4 MB it sorts every reading on disk instead of hashing the groups in memory.
    """
    await session.execute(
        text("SELECT set_config('jit', 'off', true), set_config('work_mem', :work_mem, true)"),
        {"work_mem": ANALYTICS_WORK_MEM},
    )


async def count_series(session: Executor, filters: ReadingFilter, *, at_most: int) -> int:
    """How many (device, sensor) series have readings matching `filters`, counting no further than `at_most`."""
    where, params = filters.where()
    params["at_most"] = at_most
    total = await session.scalar(
        text(
            "SELECT count(*) FROM ("  # noqa: S608 - constant fragments; values are bound parameters
            f"SELECT DISTINCT r.device_id, r.sensor FROM {READINGS} AS r WHERE {where} LIMIT :at_most) AS s"
        ),
        params,
    )
    return int(total or 0)


READING_FIELDS = ("device_id", "sensor", "ts", "value", "unit", "received_at")
"""The columns of a `Reading`, in order; `latest_readings` has the same ones."""
READING_COLUMNS = ", ".join(f"r.{readings.c[name].name}" for name in READING_FIELDS)
READINGS = readings.name


def _reading(row: Sequence[Any]) -> Reading:
    device_id, sensor, ts, value, unit, received_at = row
    return Reading(device_id=device_id, sensor=sensor, ts=ts, value=value, unit=unit, received_at=received_at)


def reading_page_statement(filters: ReadingFilter, *, offset: int, limit: int) -> tuple[TextClause, dict[str, Any]]:
    """The statement of `reading_page`."""
    where, params = filters.where()
    params.update(offset=offset, limit=limit)
    statement = text(
        f"SELECT {READING_COLUMNS} FROM {READINGS} AS r WHERE {where} "  # noqa: S608 - constant fragments
        "ORDER BY r.ts DESC, r.device_id, r.sensor OFFSET :offset LIMIT :limit"
    )
    return statement, params


async def reading_page(session: Executor, filters: ReadingFilter, *, offset: int, limit: int) -> list[Reading]:
    """Readings newest first (ties by device, then sensor)."""
    statement, params = reading_page_statement(filters, offset=offset, limit=limit)
    return [_reading(row) for row in await session.execute(statement, params)]


async def count_readings(session: Executor, filters: ReadingFilter) -> int:
    """The exact number of readings matching `filters`."""
    where, params = filters.where()
    total = await session.scalar(
        text(f"SELECT count(*) FROM {READINGS} AS r WHERE {where}"),  # noqa: S608 - constant fragments
        params,
    )
    return int(total or 0)


def reading_export_statement(filters: ReadingFilter, *, max_rows: int) -> tuple[TextClause, dict[str, Any]]:
    """The statement of a raw export: at most `max_rows` readings, series after series, each in time order.

    That is the primary key's order, so PostgreSQL merges the partitions' index scans instead of sorting.
    """
    where, params = filters.where()
    params["limit"] = max_rows
    statement = text(
        f"SELECT {READING_COLUMNS} FROM {READINGS} AS r WHERE {where} "  # noqa: S608 - constant fragments
        "ORDER BY r.device_id, r.sensor, r.ts LIMIT :limit"
    )
    return statement, params


async def reading_stats(session: Executor, filters: ReadingFilter) -> ReadingStats:
    """Count, mean, extremes, and the first and last readings (by ts; ties by device, then sensor)."""
    where, params = filters.where()
    count, avg, min_, max_, first_ts, last_ts = (
        await session.execute(
            text(
                "SELECT count(*), avg(r.value), min(r.value), max(r.value), min(r.ts), max(r.ts) "  # noqa: S608
                f"FROM {READINGS} AS r WHERE {where}"
            ),
            params,
        )
    ).one()
    if not count:
        return ReadingStats(count=0, avg=None, min=None, max=None, first=None, last=None)
    # With the time known, each end is looked up in a single partition.
    at_time = text(
        f"SELECT {READING_COLUMNS} FROM {READINGS} AS r WHERE {where} AND r.ts = :at "  # noqa: S608
        "ORDER BY r.device_id, r.sensor LIMIT 1"
    )
    first = (await session.execute(at_time, {**params, "at": first_ts})).one_or_none()
    last = (await session.execute(at_time, {**params, "at": last_ts})).one_or_none()
    return ReadingStats(
        count=int(count),
        avg=avg,
        min=min_,
        max=max_,
        first=_reading(first) if first is not None else None,
        last=_reading(last) if last is not None else None,
    )


def as_reading(row: Row[Any]) -> Reading:
    """A row of a raw export statement as a `Reading`."""
    return _reading(row)


def as_bucket(row: Row[Any]) -> AggregateBucket:
    """A row of an aggregates export statement as an `AggregateBucket`."""
    return _bucket(row)


async def latest_page(
    session: Executor, *, device: str | None, sensor: str | None, offset: int, limit: int
) -> tuple[list[Reading], int]:
    """The newest reading of each series (by device, then sensor) and how many series match."""
    latest = latest_readings.c
    statement = select(*(latest[name] for name in READING_FIELDS)).order_by(latest.device_id, latest.sensor)
    if device is not None:
        statement = statement.where(latest.device_id == device)
    if sensor is not None:
        statement = statement.where(latest.sensor == sensor)
    rows, total = await paginate(session, statement, offset=offset, limit=limit)
    return [_reading(row) for row in rows], total


def _like_pattern(fragment: str) -> str:
    """`%fragment%` for ILIKE, with the fragment's own `%`, `_` and `\\` matching themselves."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def rejected_page(
    session: Executor, filters: RejectedFilter, *, offset: int, limit: int
) -> tuple[list[RejectedReading], int]:
    """Rejected readings, most recently received first, and how many match."""
    rejected = rejected_readings.c
    statement: Select[Any] = select(*(rejected[name] for name in REJECTED_FIELDS))
    if filters.start is not None:
        statement = statement.where(rejected.received_at >= filters.start)
    if filters.end is not None:
        statement = statement.where(rejected.received_at < filters.end)
    for column, value in ((rejected.device_id, filters.device), (rejected.sensor, filters.sensor)):
        if value is not None:
            statement = statement.where(column == value)
    if filters.source is not None:
        statement = statement.where(rejected.source == filters.source)
    if filters.reason is not None:
        statement = statement.where(rejected.reason.ilike(_like_pattern(filters.reason), escape="\\"))
    statement = statement.order_by(rejected.received_at.desc(), rejected.id.desc())
    rows, total = await paginate(session, statement, offset=offset, limit=limit)
    return [RejectedReading(**row._mapping) for row in rows], total
