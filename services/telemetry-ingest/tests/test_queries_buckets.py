"""Bucket intervals: parsing, refusals with clear reasons, and a grid aligned exactly as PostgreSQL's date_bin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from telemetry_ingest.queries.buckets import (
    BUCKET_ORIGIN,
    MAX_BUCKETS,
    InvalidBucketError,
    bucket_floor,
    bucket_grid,
    format_bucket,
    parse_bucket,
)


@pytest.mark.parametrize(
    ("text_", "seconds"),
    [
        ("1m", 60),
        ("5m", 300),
        ("15m", 900),
        ("1h", 3600),
        ("1d", 86400),
        ("2w", 14 * 86400),
        ("30s", 30),
        ("90s", 90),
        ("PT30S", 30),
        ("pt30s", 30),
        ("PT1H30M", 5400),
        ("PT15M", 900),
        ("P1D", 86400),
        ("P1DT12H", 129600),
        ("P2W", 14 * 86400),
        (" 5m ", 300),
        ("366d", 366 * 86400),
    ],
)
def test_short_and_iso_buckets_parse(text_: str, seconds: int) -> None:
    assert parse_bucket(text_) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text_", "reason"),
    [
        ("0m", "positive"),
        ("PT0S", "positive"),
        ("P0D", "positive"),
        ("-5m", "positive"),
        ("-PT5M", "positive"),
        ("", "empty"),
        ("5", "use <n><s|m|h|d|w>"),
        ("5x", "use <n><s|m|h|d|w>"),
        ("5M", "use <n><s|m|h|d|w>"),
        ("1h30m", "use <n><s|m|h|d|w>"),
        ("PT", "use <n><s|m|h|d|w>"),
        ("P", "use <n><s|m|h|d|w>"),
        ("P1M", "months and years"),
        ("P1Y", "months and years"),
        ("P1Y2DT3H", "months and years"),
        ("PT0.5S", "whole seconds"),
        ("367d", "largest bucket is 366 days"),
        ("53w", "largest bucket is 366 days"),
        ("P999999999W", "largest bucket is 366 days"),
        ("9999999999s", "use <n><s|m|h|d|w>"),
    ],
)
def test_bad_buckets_say_why(text_: str, reason: str) -> None:
    with pytest.raises(InvalidBucketError, match=reason.replace("|", r"\|")):
        parse_bucket(text_)


def test_format_uses_the_largest_whole_unit() -> None:
    assert [format_bucket(timedelta(seconds=s)) for s in (1, 90, 300, 3600, 5400, 86400, 7 * 86400, 8 * 86400)] == [
        "1s",
        "90s",
        "5m",
        "1h",
        "90m",
        "1d",
        "1w",
        "8d",
    ]
    assert format_bucket(parse_bucket("PT300S")) == "5m"


def test_buckets_are_aligned_to_a_fixed_origin_whatever_the_range() -> None:
    assert BUCKET_ORIGIN.weekday() == 0
    moment = datetime(2025, 10, 17, 10, 37, 12, tzinfo=UTC)
    assert bucket_floor(moment, timedelta(minutes=5)) == datetime(2025, 10, 17, 10, 35, tzinfo=UTC)
    assert bucket_floor(moment, timedelta(days=1)) == datetime(2025, 10, 17, tzinfo=UTC)
    assert bucket_floor(moment, timedelta(weeks=1)) == datetime(2025, 10, 13, tzinfo=UTC)  # a Monday
    seven = timedelta(minutes=7)
    early = bucket_grid(moment - timedelta(hours=5), moment, seven)
    late = bucket_grid(moment - timedelta(hours=1), moment + timedelta(hours=1), seven)
    assert (late.first - early.first) % seven == timedelta(0)


def test_grid_covers_the_half_open_range() -> None:
    start = datetime(2025, 10, 17, 10, 2, tzinfo=UTC)
    grid = bucket_grid(start, datetime(2025, 10, 17, 10, 20, tzinfo=UTC), timedelta(minutes=5))
    assert (grid.first, grid.last, grid.count) == (
        datetime(2025, 10, 17, 10, 0, tzinfo=UTC),
        datetime(2025, 10, 17, 10, 15, tzinfo=UTC),
        4,
    )
    one = bucket_grid(start, start + timedelta(seconds=1), timedelta(days=1))
    assert one.count == 1


def test_too_many_buckets_or_an_empty_range_are_refused() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert bucket_grid(start, start + timedelta(seconds=MAX_BUCKETS), timedelta(seconds=1)).count == MAX_BUCKETS
    with pytest.raises(InvalidBucketError, match="100,001 buckets; at most 100,000"):
        bucket_grid(start, start + timedelta(seconds=MAX_BUCKETS + 1), timedelta(seconds=1))
    with pytest.raises(InvalidBucketError, match="before `to`"):
        bucket_grid(start, start, timedelta(minutes=1))


async def test_python_floor_matches_date_bin(db_session: AsyncSession) -> None:
    moments = [
        datetime(2025, 10, 17, 10, 37, 12, 345678, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 30, tzinfo=UTC),
        datetime(2031, 1, 1, tzinfo=UTC),
    ]
    strides = [parse_bucket(text_) for text_ in ("1s", "7m", "PT1H30M", "1d", "1w", "13d")]
    for stride in strides:
        for moment in moments:
            binned = await db_session.scalar(
                text(
                    "SELECT date_bin(CAST(:stride AS interval), CAST(:ts AS timestamptz), CAST(:origin AS timestamptz))"
                ),
                {"stride": stride, "ts": moment, "origin": BUCKET_ORIGIN},
            )
            assert binned == bucket_floor(moment, stride), (stride, moment)
