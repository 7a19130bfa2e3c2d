"""The period of a report, checked, and the time buckets of occupancy over it.

Buckets follow the wall clock of a time zone: a day runs from local midnight to the next one (23 or 25 hours
across a daylight saving change), an hour from one local whole hour to the next. Buckets at the edges are cut
to the period, so each bucket says exactly which instants it covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rtls_cambus.positions.errors import PeriodError
from rtls_cambus.reports.errors import PeriodTooLongError, UnknownTimeZoneError


class BucketSize(StrEnum):
    hour = "hour"
    day = "day"


@dataclass(frozen=True)
class Period:
    """`[start, end)` in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def checked(cls, start: datetime, end: datetime, *, max_days: int) -> Period:
        """The period, or 422 when `end` is not after `start` or it is longer than `max_days`."""
        if end <= start:
            raise PeriodError()
        if end - start > timedelta(days=max_days):
            raise PeriodTooLongError(max_days)
        return cls(start.astimezone(UTC), end.astimezone(UTC))

    def stamp(self) -> str:
        """`<start>-<end>` in compact UTC form, for file names."""
        return f"{self.start:%Y%m%dT%H%M%SZ}-{self.end:%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True)
class Bucket:
    start: datetime
    end: datetime


def time_zone(name: str) -> tzinfo:
    """The IANA time zone `name`, or 422 when there is none of that name."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZoneError(name) from None


def _floor(moment: datetime, size: BucketSize, zone: tzinfo) -> datetime:
    local = moment.astimezone(zone)
    if size == BucketSize.hour:
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return datetime.combine(local.date(), datetime.min.time(), tzinfo=zone).astimezone(UTC)


def _next(start: datetime, size: BucketSize, zone: tzinfo) -> datetime:
    if size == BucketSize.hour:
        # Whole hours of absolute time: local whole hours stay whole across a one-hour daylight saving shift.
        return start + timedelta(hours=1)
    next_day = start.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(next_day, datetime.min.time(), tzinfo=zone).astimezone(UTC)


def buckets(period: Period, size: BucketSize, zone: tzinfo) -> list[Bucket]:
    """The buckets covering `period`, in order, the first and last cut to it."""
    found: list[Bucket] = []
    start = _floor(period.start, size, zone)
    while start < period.end:
        end = _next(start, size, zone)
        found.append(Bucket(max(start, period.start), min(end, period.end)))
        start = end
    return found
