"""Request parameters and response bodies of the telemetry queries.

Parameters are pydantic models read from the query string (and, for the CSV export's POST, from a form or JSON
body), so GET and POST share one definition. Unknown parameters are refused with 422, so a misspelt filter
(`sensor_id` for `sensor`) never silently returns unfiltered data; so are empty values (`device=`, `to=`): a
filter is given with a value or left out, as the description says. Times are RFC 3339 date-times with an offset
(`2025-10-17T08:00:00Z`), read in UTC.

Lists answer `{"count", "next", "previous", "results"}` (plus a `query` object echoing the resolved filters where
a time range applies); `page` is 1-based and `limit` is the page size. `next`/`previous` are full URLs that pin
the resolved `from` and `to`, so paging through a default range ("the last 24 hours") stays on the same range.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from mirante.types import DateTime, Text
from mirante.web.pagination import Page
from telemetry_ingest.queries.repository import AggregateBucket, Fill, Order

ExportKind = Literal["raw", "aggregates"]
RejectedSource = Literal["mqtt", "http"]

MAX_PAGE = 1_000_000
MAX_LIMIT = 1000
IDENTIFIER_MAX_LENGTH = 128

DeviceFilter = Annotated[
    Text | None,
    Field(
        min_length=1,
        max_length=IDENTIFIER_MAX_LENGTH,
        description="device id (exact); an unknown device yields no rows",
        examples=["boiler-1"],
    ),
]
SensorFilter = Annotated[
    Text | None,
    Field(
        min_length=1,
        max_length=IDENTIFIER_MAX_LENGTH,
        description="sensor type (exact); an unknown sensor yields no rows",
        examples=["temperature"],
    ),
]
PageNumber = Annotated[int, Field(ge=1, le=MAX_PAGE, description="1-based page number")]


class QueryParams(BaseModel):
    """Base of the parameter models: unknown names refused, values taken as given."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RangeParams(QueryParams):
    """Device, sensor and the half-open time range `[from, to)`; default range: the 24 hours before `to`."""

    device: DeviceFilter = None
    sensor: SensorFilter = None
    from_: DateTime | None = Field(
        default=None,
        alias="from",
        description="RFC 3339 start, inclusive; default: 24 hours before `to`",
        examples=["2025-10-17T00:00:00Z"],
    )
    to: DateTime | None = Field(
        default=None,
        description="RFC 3339 end, exclusive; default: now (or 24 hours after `from`)",
        examples=["2025-10-18T00:00:00Z"],
    )


class BucketParams(RangeParams):
    """The range filters plus the bucket size and the gap-filling mode."""

    bucket: Text = Field(
        default="1h",
        max_length=32,
        description="bucket size: `<n><s|m|h|d|w>` (`30s`, `5m`, `15m`, `1h`, `1d`, `1w`) or an ISO 8601 duration "
        "(`PT30S`, `PT1H30M`, `P1D`); 1 second to 366 days, at most 100,000 buckets in the range. Buckets are "
        "aligned to Monday 1970-01-05 00:00 UTC, so they never move between queries",
        examples=["5m"],
    )
    fill: Fill = Field(
        default="none",
        description="`none`: only buckets holding readings; `null`: also every empty bucket of the range, with null "
        "aggregates and count 0; `previous`: empty buckets carry the last value before them (locf), taken from "
        "the series' last reading before `from` for empty buckets at the start. Gap filling covers the series "
        "(device, sensor) with at least one reading in the range, at most 1,000,000 buckets in all",
    )
    order: Order = Field(
        default="desc",
        description="`desc`: newest bucket first; `asc`: oldest first; then by device and sensor either way. The "
        "aggregates pages and the aggregates CSV export follow the same order",
    )


class AggregateParams(BucketParams):
    page: PageNumber = 1
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT, description="buckets per page (at most 1000)")


class ReadingsParams(RangeParams):
    page: PageNumber = 1
    limit: int = Field(default=500, ge=1, le=MAX_LIMIT, description="readings per page (at most 1000)")


class StatsParams(RangeParams):
    pass


class LatestParams(QueryParams):
    device: DeviceFilter = None
    sensor: SensorFilter = None
    page: PageNumber = 1
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT, description="series per page (at most 1000)")


class ExportParams(BucketParams):
    """What to export: raw readings, or the aggregates (`bucket`, `fill` and `order` apply only to those)."""

    kind: ExportKind = Field(default="raw", description="`raw`: readings; `aggregates`: buckets")


class RejectedParams(QueryParams):
    reason: Text | None = Field(
        default=None, max_length=200, description="text the reason contains (case-insensitive)", examples=["future"]
    )
    device: DeviceFilter = None
    sensor: SensorFilter = None
    source: RejectedSource | None = Field(default=None, description="`mqtt` or `http`")
    from_: DateTime | None = Field(default=None, alias="from", description="RFC 3339; received at or after this time")
    to: DateTime | None = Field(default=None, description="RFC 3339; received before this time")
    page: PageNumber = 1
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT, description="rows per page (at most 1000)")


class RangeOut(BaseModel):
    """The filters a response describes, with the time range as resolved (defaults applied)."""

    from_: datetime = Field(serialization_alias="from", description="start of the range, inclusive")
    to: datetime = Field(description="end of the range, exclusive")
    device: str | None
    sensor: str | None


class AggregateQueryOut(RangeOut):
    bucket: str = Field(description="the bucket size in its shortest form (`PT300S` and `5m` are both `5m`)")
    bucket_seconds: int
    origin: datetime = Field(description="every bucket starts at `origin + k x bucket`")
    fill: Fill
    order: Order


class AggregateOut(BaseModel):
    """One bucket of one series. Empty buckets added by gap filling have `filled: true` and `count: 0`."""

    model_config = ConfigDict(from_attributes=True)

    device_id: str
    sensor: str
    bucket: datetime = Field(description="start of the bucket, inclusive")
    bucket_end: datetime = Field(description="end of the bucket, exclusive")
    avg: float | None
    min: float | None
    max: float | None
    last: float | None = Field(description="the value of the reading with the greatest ts in the bucket")
    count: int = Field(description="readings in the bucket")
    first_ts: datetime | None = Field(description="ts of the bucket's earliest reading")
    last_ts: datetime | None = Field(description="ts of the bucket's latest reading")
    filled: bool = Field(description="an empty bucket added by gap filling")
    unit: str | None = Field(
        description="the sensor's unit: the one an operator set on the sensor, else the first its readings carried"
    )

    @classmethod
    def of(cls, bucket: AggregateBucket, stride: timedelta) -> AggregateOut:
        return cls(
            device_id=bucket.device_id,
            sensor=bucket.sensor,
            bucket=bucket.bucket,
            bucket_end=bucket.bucket + stride,
            avg=bucket.avg,
            min=bucket.min,
            max=bucket.max,
            last=bucket.last,
            count=bucket.count,
            first_ts=bucket.first_ts,
            last_ts=bucket.last_ts,
            filled=bucket.filled,
            unit=bucket.unit,
        )


class AggregatePageOut(Page[AggregateOut]):
    """Buckets newest first (`order=asc`: oldest first), then by device and sensor; `count` is exact."""

    query: AggregateQueryOut


class ReadingOut(BaseModel):
    """One reading as stored: `ts` is the device's time, `received_at` when the service accepted it."""

    model_config = ConfigDict(from_attributes=True)

    device_id: str
    sensor: str
    ts: datetime
    value: float
    unit: str | None
    received_at: datetime


class ReadingPageOut(Page[ReadingOut]):
    """Readings newest first (then by device and sensor); `count` is exact."""

    query: RangeOut


class StatsOut(RangeOut):
    """Statistics of the readings matching the filters; all null but `count` when there are none.

    `first_*` and `last_*` describe the earliest and the latest reading (over every matching series when device or
    sensor is not given; ties broken by device, then sensor).
    """

    count: int
    avg: float | None
    min: float | None
    max: float | None
    first_ts: datetime | None
    first_value: float | None
    last_ts: datetime | None
    last_value: float | None


class LatestOut(ReadingOut):
    """The newest reading of one series (by ts, not by arrival)."""


class RejectedOut(BaseModel):
    """A message or reading the ingest refused, and why."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    source: str = Field(description="`mqtt` or `http`")
    topic: str | None
    device_id: str | None
    sensor: str | None
    reason: str
    payload: str | None = Field(description="the message as received, cut to 4 KiB")


class PageLinks:
    """`next` and `previous` URLs of a page: the request's own URL with `page` (and pinned values) replaced."""

    def __init__(self, request: Request, page: int, limit: int, **pinned: str) -> None:
        self.request = request
        self.page = page
        self.limit = limit
        self.pinned = pinned

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def _link(self, page: int) -> str:
        return str(self.request.url.include_query_params(**self.pinned, page=page, limit=self.limit))

    def next(self, returned: int, count: int) -> str | None:
        return self._link(self.page + 1) if self.offset + returned < count else None

    def previous(self) -> str | None:
        return self._link(self.page - 1) if self.page > 1 else None


def iso(moment: datetime) -> str:
    """`moment` in ISO 8601 with a `Z` for UTC, as links and CSV files show times."""
    return moment.isoformat().replace("+00:00", "Z")
