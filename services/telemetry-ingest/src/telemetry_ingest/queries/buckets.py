"""Time buckets of the aggregate queries: parsing the interval, and the bucket grid of a time range.

A bucket is written `<n><unit>` (`30s`, `5m`, `1h`, `1d`, `2w`; units s, m, h, d, w) or as an ISO 8601 duration
of fixed length (`PT30S`, `PT1H30M`, `P1D`, `P2W`). Months and years are refused: they have no fixed length.

Buckets are aligned to a fixed origin, `BUCKET_ORIGIN` (Monday 1970-01-05 00:00 UTC), exactly as PostgreSQL's
`date_bin(stride, ts, origin)` aligns them, so a given bucket size always cuts time at the same instants whatever
range a query asks for: daily buckets start at midnight UTC, weekly ones on Mondays, and a 7-minute bucket lands
on the same boundaries in every query. `bucket_floor` is the Python twin of that `date_bin` call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BUCKET_ORIGIN = datetime(1970, 1, 5, tzinfo=UTC)
"""Every bucket boundary is `BUCKET_ORIGIN + k * stride` (a Monday at midnight UTC)."""
MIN_BUCKET = timedelta(seconds=1)
MAX_BUCKET = timedelta(days=366)
MAX_BUCKETS = 100_000
"""The most buckets one query may cut its time range into."""

_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
_SHORT = re.compile(r"(?P<number>\d{1,9})(?P<unit>[smhdw])")
_ISO = re.compile(
    r"P(?:(?P<weeks>\d{1,9})W|(?:(?P<days>\d{1,9})D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d{1,9})H)?(?:(?P<minutes>\d{1,9})M)?(?:(?P<seconds>\d{1,9})S)?)?)"
)
_SYNTAX = "use <n><s|m|h|d|w> (e.g. 30s, 5m, 1h, 1d) or an ISO 8601 duration (e.g. PT30S, PT15M, P1D)"


class InvalidBucketError(ValueError):
    """A bucket that is malformed, not positive, too small or too large, or too fine for the time range."""


def parse_bucket(text: str) -> timedelta:
    """The stride of bucket `text`; raises `InvalidBucketError` saying what is wrong with it."""
    cleaned = text.strip()
    if not cleaned:
        raise InvalidBucketError(f"the bucket is empty: {_SYNTAX}")
    if cleaned.startswith("-"):
        raise InvalidBucketError(f"invalid bucket {text!r}: a bucket must be a positive duration")
    short = _SHORT.fullmatch(cleaned)
    if short is not None:
        stride = int(short["number"]) * _UNITS[short["unit"]]
    else:
        stride = _parse_iso(cleaned.upper(), text)
    if stride <= timedelta(0):
        raise InvalidBucketError(f"invalid bucket {text!r}: a bucket must be a positive duration")
    if stride < MIN_BUCKET:
        raise InvalidBucketError(f"invalid bucket {text!r}: the smallest bucket is 1 second")
    if stride > MAX_BUCKET:
        raise InvalidBucketError(f"invalid bucket {text!r}: the largest bucket is {MAX_BUCKET.days} days")
    return stride


def _parse_iso(upper: str, text: str) -> timedelta:
    match = _ISO.fullmatch(upper)
    if match is None or upper == "P":
        if upper.startswith("P") and any(designator in upper.partition("T")[0] for designator in "YM"):
            raise InvalidBucketError(
                f"invalid bucket {text!r}: months and years have no fixed length; use days or weeks (e.g. P30D)"
            )
        if upper.startswith("P") and any(separator in upper for separator in ".,"):
            raise InvalidBucketError(f"invalid bucket {text!r}: use whole seconds (the smallest bucket is 1 second)")
        raise InvalidBucketError(f"invalid bucket {text!r}: {_SYNTAX}")
    try:
        return timedelta(
            weeks=int(match["weeks"] or 0),
            days=int(match["days"] or 0),
            hours=int(match["hours"] or 0),
            minutes=int(match["minutes"] or 0),
            seconds=int(match["seconds"] or 0),
        )
    except OverflowError:
        raise InvalidBucketError(f"invalid bucket {text!r}: the largest bucket is {MAX_BUCKET.days} days") from None


def format_bucket(stride: timedelta) -> str:
    """The shortest `<n><unit>` spelling of `stride` (`300 s` -> `5m`, `90 s` -> `90s`)."""
    seconds = int(stride.total_seconds())
    for unit, size in _UNITS.items():
        unit_seconds = int(size.total_seconds())
        if seconds % unit_seconds == 0:
            return f"{seconds // unit_seconds}{unit}"
    raise AssertionError("every stride is a whole number of seconds")


def bucket_floor(moment: datetime, stride: timedelta, origin: datetime = BUCKET_ORIGIN) -> datetime:
    """The start of the bucket holding `moment`: what `date_bin(stride, moment, origin)` returns."""
    return origin + ((moment - origin) // stride) * stride


@dataclass(frozen=True)
class BucketGrid:
    """The buckets covering the half-open range `[start, end)`: from `first` to `last` (both bucket starts).

    `first` may begin before `start` and the last bucket may end after `end`: only readings inside the range
    are aggregated, the buckets themselves keep their fixed boundaries.
    """

    stride: timedelta
    first: datetime
    last: datetime

    @property
    def count(self) -> int:
        return (self.last - self.first) // self.stride + 1


def bucket_grid(start: datetime, end: datetime, stride: timedelta, *, max_buckets: int = MAX_BUCKETS) -> BucketGrid:
    """The buckets of `stride` covering `[start, end)`; `InvalidBucketError` beyond `max_buckets` of them."""
    if end <= start:
        raise InvalidBucketError("the time range is empty: `from` must be before `to`")
    first = bucket_floor(start, stride)
    last = bucket_floor(end - timedelta(microseconds=1), stride)
    grid = BucketGrid(stride=stride, first=first, last=last)
    if grid.count > max_buckets:
        raise InvalidBucketError(
            f"bucket {format_bucket(stride)} cuts this time range into {grid.count:,} buckets; at most "
            f"{max_buckets:,} are allowed: use a larger bucket or a shorter range"
        )
    return grid
