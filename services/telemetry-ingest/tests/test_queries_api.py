"""Tenant-scoped telemetry queries: aggregates (with gap filling), raw readings, stats, latest values, rejected
readings; validation, pagination, tenant isolation, and the query plans on the partitioned readings table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from telemetry_ingest.queries import repository
from telemetry_ingest.queries.buckets import bucket_grid, parse_bucket
from telemetry_ingest.queries.repository import ReadingFilter
from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.partitions import ensure_partitions

TenantFactory = Callable[..., Awaitable[str]]
Row = tuple[str, str, datetime, float]

DAY = date(2025, 10, 17)


def at(hour: int, minute: int, second: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def url(slug: str, path: str) -> str:
    return f"/api/v1/tenants/{slug}/{path}"


async def seed(session: AsyncSession, slug: str, rows: list[Row], unit: str | None = "celsius") -> None:
    """Readings written straight into the tenant's table (partitions first), in the order given."""
    schema = schema_for(slug)
    await ensure_partitions(session, schema, {ts.astimezone(UTC).date() for _d, _s, ts, _v in rows})
    await session.execute(
        text(f'INSERT INTO "{schema}".readings (device_id, sensor, ts, value, unit) VALUES (:d, :s, :ts, :v, :u)'),
        [{"d": device, "s": sensor, "ts": ts, "v": value, "u": unit} for device, sensor, ts, value in rows],
    )


# boiler-1/temp: 5.0 before the range; 20, 22, 21 in 10:00-10:05 (inserted out of order); nothing in 10:05-10:10;
# 30 and 10 in 10:10-10:15; nothing after. boiler-2/temp: 50 at 10:07. boiler-1/humidity: 60 at 10:03.
SAMPLE: list[Row] = [
    ("boiler-1", "temp", at(9, 50), 5.0),
    ("boiler-1", "temp", at(10, 0), 20.0),
    ("boiler-1", "temp", at(10, 4, 59), 21.0),
    ("boiler-1", "temp", at(10, 1, 30), 22.0),
    ("boiler-1", "temp", at(10, 14), 10.0),
    ("boiler-1", "temp", at(10, 10), 30.0),
    ("boiler-2", "temp", at(10, 7), 50.0),
    ("boiler-1", "humidity", at(10, 3), 60.0),
]
RANGE = {"from": iso(at(9, 55)), "to": iso(at(10, 20))}


# The 5-minute buckets of the two temperature series over RANGE, gaps filled with nulls, newest first.
NULL_FILLED = [
    ("boiler-1", "temp", "2025-10-17T10:15:00Z", None, None, None, None, 0, True),
    ("boiler-2", "temp", "2025-10-17T10:15:00Z", None, None, None, None, 0, True),
    ("boiler-1", "temp", "2025-10-17T10:10:00Z", 20.0, 10.0, 30.0, 10.0, 2, False),
    ("boiler-2", "temp", "2025-10-17T10:10:00Z", None, None, None, None, 0, True),
    ("boiler-1", "temp", "2025-10-17T10:05:00Z", None, None, None, None, 0, True),
    ("boiler-2", "temp", "2025-10-17T10:05:00Z", 50.0, 50.0, 50.0, 50.0, 1, False),
    ("boiler-1", "temp", "2025-10-17T10:00:00Z", 21.0, 20.0, 22.0, 21.0, 3, False),
    ("boiler-2", "temp", "2025-10-17T10:00:00Z", None, None, None, None, 0, True),
    ("boiler-1", "temp", "2025-10-17T09:55:00Z", None, None, None, None, 0, True),
    ("boiler-2", "temp", "2025-10-17T09:55:00Z", None, None, None, None, 0, True),
]


@pytest.fixture
async def tenant(make_tenant: TenantFactory, db_session: AsyncSession) -> str:
    slug = await make_tenant(retention_days=3650)
    await seed(db_session, slug, SAMPLE)
    return slug


@pytest.fixture
async def viewer(auth_headers: HeadersFactory, tenant: str) -> dict[str, str]:
    return await auth_headers("viewer", tenant=tenant)


def strip(bucket: dict[str, Any]) -> tuple[Any, ...]:
    return (
        bucket["device_id"],
        bucket["sensor"],
        bucket["bucket"],
        bucket["avg"],
        bucket["min"],
        bucket["max"],
        bucket["last"],
        bucket["count"],
        bucket["filled"],
    )


# ---------------------------------------------------------------------------------------------------- aggregates


async def test_aggregates_by_bucket_are_computed_per_series(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    response = await client.get(
        url(tenant, "telemetry/aggregates"), params={**RANGE, "bucket": "5m", "sensor": "temp"}, headers=viewer
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3
    assert (body["next"], body["previous"]) == (None, None)
    assert [strip(bucket) for bucket in body["results"]] == [
        ("boiler-1", "temp", "2025-10-17T10:10:00Z", 20.0, 10.0, 30.0, 10.0, 2, False),
        ("boiler-2", "temp", "2025-10-17T10:05:00Z", 50.0, 50.0, 50.0, 50.0, 1, False),
        ("boiler-1", "temp", "2025-10-17T10:00:00Z", 21.0, 20.0, 22.0, 21.0, 3, False),
    ]
    first = body["results"][2]
    assert (first["bucket_end"], first["first_ts"], first["last_ts"]) == (
        "2025-10-17T10:05:00Z",
        "2025-10-17T10:00:00Z",
        "2025-10-17T10:04:59Z",
    )
    assert body["query"] == {
        "from": "2025-10-17T09:55:00Z",
        "to": "2025-10-17T10:20:00Z",
        "device": None,
        "sensor": "temp",
        "bucket": "5m",
        "bucket_seconds": 300,
        "origin": "1970-01-05T00:00:00Z",
        "fill": "none",
        "order": "desc",
    }


async def test_aggregates_oldest_first_on_request(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    params = {**RANGE, "bucket": "5m", "sensor": "temp", "fill": "null", "order": "asc", "limit": 4}
    first = await client.get(url(tenant, "telemetry/aggregates"), params=params, headers=viewer)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["query"]["order"] == "asc"
    # Oldest bucket first, then device and sensor as in the newest-first order; the next page keeps the order.
    in_order = sorted(NULL_FILLED, key=lambda bucket: (bucket[2], bucket[0], bucket[1]))
    assert [strip(bucket) for bucket in body["results"]] == in_order[:4]
    assert "order=asc" in body["next"]
    second = await client.get(body["next"], headers=viewer)
    assert [strip(bucket) for bucket in second.json()["results"]] == in_order[4:8]


async def test_wider_buckets_and_iso_durations_agree(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    params = {**RANGE, "device": "boiler-1", "sensor": "temp"}
    hourly = await client.get(url(tenant, "telemetry/aggregates"), params={**params, "bucket": "1h"}, headers=viewer)
    iso_hourly = await client.get(
        url(tenant, "telemetry/aggregates"), params={**params, "bucket": "PT1H"}, headers=viewer
    )
    assert hourly.status_code == 200, hourly.text
    assert hourly.json()["results"] == iso_hourly.json()["results"]
    # The 10:00 hour holds 20, 22, 21, 30, 10 (the 09:50 reading is before the range and 09:55-10:00 is empty).
    assert [strip(bucket) for bucket in hourly.json()["results"]] == [
        ("boiler-1", "temp", "2025-10-17T10:00:00Z", 20.6, 10.0, 30.0, 10.0, 5, False),
    ]
    wide = await client.get(
        url(tenant, "telemetry/aggregates"),
        params={
            "from": iso(at(0, 0)),
            "to": iso(at(0, 0, day=DAY + timedelta(days=1))),
            "bucket": "1d",
            "device": "boiler-1",
            "sensor": "temp",
        },
        headers=viewer,
    )
    assert [strip(bucket) for bucket in wide.json()["results"]] == [
        ("boiler-1", "temp", "2025-10-17T00:00:00Z", pytest.approx(108 / 6), 5.0, 30.0, 10.0, 6, False),
    ]


async def test_gap_filling_with_nulls(client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]) -> None:
    response = await client.get(
        url(tenant, "telemetry/aggregates"),
        params={**RANGE, "bucket": "5m", "sensor": "temp", "fill": "null"},
        headers=viewer,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 2 * 5
    assert [strip(bucket) for bucket in body["results"]] == NULL_FILLED
    assert all(bucket["first_ts"] is None for bucket in body["results"] if bucket["filled"])


async def test_gap_filling_carries_the_previous_value(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    response = await client.get(
        url(tenant, "telemetry/aggregates"),
        params={**RANGE, "bucket": "5m", "sensor": "temp", "fill": "previous"},
        headers=viewer,
    )

    assert response.status_code == 200, response.text
    rows = [strip(bucket) for bucket in response.json()["results"]]
    assert rows == [
        ("boiler-1", "temp", "2025-10-17T10:15:00Z", 10.0, 10.0, 10.0, 10.0, 0, True),
        ("boiler-2", "temp", "2025-10-17T10:15:00Z", 50.0, 50.0, 50.0, 50.0, 0, True),
        ("boiler-1", "temp", "2025-10-17T10:10:00Z", 20.0, 10.0, 30.0, 10.0, 2, False),
        ("boiler-2", "temp", "2025-10-17T10:10:00Z", 50.0, 50.0, 50.0, 50.0, 0, True),
        ("boiler-1", "temp", "2025-10-17T10:05:00Z", 21.0, 21.0, 21.0, 21.0, 0, True),
        ("boiler-2", "temp", "2025-10-17T10:05:00Z", 50.0, 50.0, 50.0, 50.0, 1, False),
        ("boiler-1", "temp", "2025-10-17T10:00:00Z", 21.0, 20.0, 22.0, 21.0, 3, False),
        # boiler-2 has nothing before the range: its leading empty buckets stay null.
        ("boiler-2", "temp", "2025-10-17T10:00:00Z", None, None, None, None, 0, True),
        # boiler-1's last reading before the range (09:50, 5.0) fills its leading bucket.
        ("boiler-1", "temp", "2025-10-17T09:55:00Z", 5.0, 5.0, 5.0, 5.0, 0, True),
        ("boiler-2", "temp", "2025-10-17T09:55:00Z", None, None, None, None, 0, True),
    ]


async def test_aggregate_pages_follow_links_on_a_pinned_range(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    params: dict[str, str | int] = {"bucket": "5m", "sensor": "temp", "fill": "null", "limit": 4, **RANGE}
    first = (await client.get(url(tenant, "telemetry/aggregates"), params=params, headers=viewer)).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (10, 4, None)
    seen = [strip(bucket) for bucket in first["results"]]
    link = first["next"]
    pages = 1
    while link:
        page = (await client.get(link, headers=viewer)).json()
        assert page["count"] == 10
        assert page["previous"] is not None
        seen += [strip(bucket) for bucket in page["results"]]
        link = page["next"]
        pages += 1
    assert pages == 3
    assert seen == NULL_FILLED

    past_end = await client.get(url(tenant, "telemetry/aggregates"), params={**params, "page": 9}, headers=viewer)
    assert past_end.status_code == 200
    assert (past_end.json()["count"], past_end.json()["results"], past_end.json()["next"]) == (10, [], None)


async def test_default_links_pin_the_default_range(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str], db_session: AsyncSession
) -> None:
    now = datetime.now(UTC)
    await seed(
        db_session, tenant, [("boiler-9", "temp", now - timedelta(hours=h, minutes=1), float(h)) for h in range(3)]
    )

    body = (
        await client.get(url(tenant, "telemetry/aggregates"), params={"bucket": "1h", "limit": 1}, headers=viewer)
    ).json()

    assert body["count"] == 3
    start = datetime.fromisoformat(body["query"]["from"])
    end = datetime.fromisoformat(body["query"]["to"])
    assert end - start == timedelta(hours=24)
    assert abs(end - now) < timedelta(minutes=5)
    next_page = httpx.URL(body["next"])
    assert next_page.params["from"] == body["query"]["from"] and next_page.params["to"] == body["query"]["to"]
    assert (next_page.params["page"], next_page.params["limit"], next_page.params["bucket"]) == ("2", "1", "1h")


async def test_unknown_device_or_sensor_is_just_empty(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    for path in ("telemetry/aggregates", "telemetry/readings", "telemetry/latest"):
        for params in ({"device": "nobody"}, {"sensor": "nothing"}, {"device": "boiler-1", "sensor": "nothing"}):
            response = await client.get(
                url(tenant, path), params={**params, **(RANGE if "latest" not in path else {})}, headers=viewer
            )
            assert response.status_code == 200, (path, params, response.text)
            assert (response.json()["count"], response.json()["results"]) == (0, [])
    filled = await client.get(
        url(tenant, "telemetry/aggregates"), params={**RANGE, "device": "nobody", "fill": "previous"}, headers=viewer
    )
    assert (filled.json()["count"], filled.json()["results"]) == (0, [])
    stats = await client.get(url(tenant, "telemetry/stats"), params={**RANGE, "device": "nobody"}, headers=viewer)
    assert stats.json()["count"] == 0 and stats.json()["avg"] is None and stats.json()["first_ts"] is None


BAD_AGGREGATE_PARAMETERS: list[tuple[dict[str, str], str]] = [
    ({"bucket": "0m"}, "positive"),
    ({"bucket": "-1h"}, "positive"),
    ({"bucket": "P1M"}, "months and years"),
    ({"bucket": "5 minutes"}, "use <n><s|m|h|d|w>"),
    ({"bucket": "400d"}, "largest bucket"),
    ({"bucket": "1s", "from": "2025-01-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "at most 100,000"),
    ({"from": "2025-10-17T10:00:00Z", "to": "2025-10-17T10:00:00Z"}, "must be before `to`"),
    ({"from": "2025-10-18T00:00:00Z", "to": "2025-10-17T00:00:00Z"}, "must be before `to`"),
    ({"from": "yesterday"}, "from"),
    ({"to": "0.5"}, "query.to: must be an RFC 3339 date-time"),
    ({"from": "2025-10-17T09:55:00"}, "query.from: must be an RFC 3339 date-time with an offset"),
    ({"from": "0001-01-01T00:00:00Z"}, "query.from: must fall between the years 1900 and 8999"),
    ({"to": "9999-12-31T00:00:00Z"}, "query.to: must fall between the years 1900 and 8999"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"page": "0"}, "page"),
    ({"fill": "linear"}, "fill"),
    ({"order": "newest"}, "order"),
    ({"device": "d" * 129}, "device"),
    ({"sensor_id": "temp"}, "sensor_id"),
]


async def test_bad_aggregate_parameters_get_422(client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]) -> None:
    for params, message in BAD_AGGREGATE_PARAMETERS:
        response = await client.get(url(tenant, "telemetry/aggregates"), params=params, headers=viewer)

        assert response.status_code == 422, (params, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert message in error["message"], (params, error)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("telemetry/readings", "to"),
        ("telemetry/aggregates", "to"),
        ("telemetry/stats", "from"),
        ("telemetry/export.csv", "to"),
        ("rejected", "to"),
        ("telemetry/latest", "sensor"),
        ("telemetry/latest", "device"),
    ],
)
async def test_an_empty_value_is_refused_naming_the_parameter(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str], path: str, name: str
) -> None:
    response = await client.get(url(tenant, path), params={name: ""}, headers=viewer)

    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [f"query.{name}"]


async def test_gap_filling_within_the_cap_counts_every_bucket(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    # 3 series with readings x 90,000 one-second buckets: 270,000 filled buckets (the cap is 1,000,000).
    params = {"from": iso(at(9, 0)), "to": iso(at(9, 0) + timedelta(seconds=90_000)), "bucket": "1s", "fill": "null"}
    allowed = await client.get(url(tenant, "telemetry/aggregates"), params={**params, "limit": 1}, headers=viewer)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["count"] == 3 * 90_000


async def test_gap_filling_over_the_cap_is_refused(
    client: httpx.AsyncClient, make_tenant: TenantFactory, db_session: AsyncSession, auth_headers: HeadersFactory
) -> None:
    slug = await make_tenant()
    await seed(db_session, slug, [(f"dev-{n:02d}", "temp", at(10, 0), 1.0) for n in range(12)])
    headers = await auth_headers("viewer", staff=True)
    params = {"from": iso(at(9, 0)), "to": iso(at(9, 0) + timedelta(seconds=90_000)), "bucket": "1s"}

    refused = await client.get(
        url(slug, "telemetry/aggregates"), params={**params, "fill": "previous"}, headers=headers
    )
    unfilled = await client.get(url(slug, "telemetry/aggregates"), params=params, headers=headers)

    assert refused.status_code == 422, refused.text
    assert "12 series x 90,000 buckets, more than 1,000,000" in refused.json()["error"]["message"]
    assert unfilled.status_code == 200 and unfilled.json()["count"] == 12


# ---------------------------------------------------------------------------------------------------- readings


async def test_raw_readings_newest_first_with_pages(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    params = {"device": "boiler-1", "sensor": "temp", "from": iso(at(0, 0)), "to": iso(at(23, 0))}
    everything = (await client.get(url(tenant, "telemetry/readings"), params=params, headers=viewer)).json()
    assert everything["count"] == 6 and everything["next"] is None
    assert [(r["ts"], r["value"]) for r in everything["results"]] == [
        ("2025-10-17T10:14:00Z", 10.0),
        ("2025-10-17T10:10:00Z", 30.0),
        ("2025-10-17T10:04:59Z", 21.0),
        ("2025-10-17T10:01:30Z", 22.0),
        ("2025-10-17T10:00:00Z", 20.0),
        ("2025-10-17T09:50:00Z", 5.0),
    ]
    reading = everything["results"][0]
    assert set(reading) == {"device_id", "sensor", "ts", "value", "unit", "received_at"}
    assert (reading["device_id"], reading["sensor"], reading["unit"]) == ("boiler-1", "temp", "celsius")

    second = (
        await client.get(url(tenant, "telemetry/readings"), params={**params, "limit": 4, "page": 2}, headers=viewer)
    ).json()
    assert second["count"] == 6 and second["next"] is None and second["previous"] is not None
    assert [r["value"] for r in second["results"]] == [20.0, 5.0]

    window = (await client.get(url(tenant, "telemetry/readings"), params=RANGE, headers=viewer)).json()
    assert [(r["device_id"], r["sensor"], r["value"]) for r in window["results"][:2]] == [
        ("boiler-1", "temp", 10.0),
        ("boiler-1", "temp", 30.0),
    ]
    assert window["count"] == 7
    assert window["query"] == {"from": RANGE["from"], "to": RANGE["to"], "device": None, "sensor": None}


async def test_raw_reading_limits(
    client: httpx.AsyncClient, make_tenant: TenantFactory, db_session: AsyncSession, auth_headers: HeadersFactory
) -> None:
    slug = await make_tenant()
    start = at(0, 0)
    await seed(db_session, slug, [("dev", "temp", start + timedelta(seconds=n), float(n)) for n in range(1200)])
    headers = await auth_headers("viewer", tenant=slug)
    params = {"from": iso(start), "to": iso(start + timedelta(hours=1))}

    default = (await client.get(url(slug, "telemetry/readings"), params=params, headers=headers)).json()
    largest = (
        await client.get(url(slug, "telemetry/readings"), params={**params, "limit": 1000}, headers=headers)
    ).json()
    last = (
        await client.get(url(slug, "telemetry/readings"), params={**params, "limit": 1000, "page": 2}, headers=headers)
    ).json()
    too_many = await client.get(url(slug, "telemetry/readings"), params={**params, "limit": 1001}, headers=headers)

    assert (default["count"], len(default["results"]), default["results"][0]["value"]) == (1200, 500, 1199.0)
    assert (len(largest["results"]), largest["results"][-1]["value"]) == (1000, 200.0)
    assert [r["value"] for r in last["results"]] == [float(n) for n in range(199, -1, -1)]
    assert too_many.status_code == 422


# ---------------------------------------------------------------------------------------------------- stats


async def test_stats_of_the_filters(client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]) -> None:
    one = await client.get(
        url(tenant, "telemetry/stats"), params={**RANGE, "device": "boiler-1", "sensor": "temp"}, headers=viewer
    )
    every = await client.get(url(tenant, "telemetry/stats"), params=RANGE, headers=viewer)

    assert one.status_code == 200, one.text
    assert one.json() == {
        "from": RANGE["from"],
        "to": RANGE["to"],
        "device": "boiler-1",
        "sensor": "temp",
        "count": 5,
        "avg": 20.6,
        "min": 10.0,
        "max": 30.0,
        "first_ts": "2025-10-17T10:00:00Z",
        "first_value": 20.0,
        "last_ts": "2025-10-17T10:14:00Z",
        "last_value": 10.0,
    }
    zoned = await client.get(
        url(tenant, "telemetry/stats"),
        params={
            "from": "2025-10-17T10:55:00+01:00",
            "to": "2025-10-17T07:20:00-03:00",
            "device": "boiler-1",
            "sensor": "temp",
        },
        headers=viewer,
    )
    assert zoned.json() == one.json()  # other zones are converted to UTC
    body = every.json()
    assert (body["count"], body["min"], body["max"]) == (7, 10.0, 60.0)
    assert body["avg"] == pytest.approx((20 + 21 + 22 + 10 + 30 + 50 + 60) / 7)
    assert (body["first_ts"], body["first_value"], body["last_value"]) == ("2025-10-17T10:00:00Z", 20.0, 10.0)


# ---------------------------------------------------------------------------------------------------- latest


async def write_latest(session: AsyncSession, slug: str, rows: list[Row]) -> None:
    await session.execute(
        text(
            f'INSERT INTO "{schema_for(slug)}".latest_readings (device_id, sensor, ts, value, unit) '
            "VALUES (:d, :s, :ts, :v, 'celsius')"
        ),
        [{"d": device, "s": sensor, "ts": ts, "v": value} for device, sensor, ts, value in rows],
    )


async def test_latest_values_per_series(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str], db_session: AsyncSession
) -> None:
    await write_latest(
        db_session,
        tenant,
        [
            ("boiler-2", "temp", at(10, 7), 50.0),
            ("boiler-1", "temp", at(10, 14), 10.0),
            ("boiler-1", "humidity", at(10, 3), 60.0),
        ],
    )

    every = (await client.get(url(tenant, "telemetry/latest"), headers=viewer)).json()
    temps = (await client.get(url(tenant, "telemetry/latest"), params={"sensor": "temp"}, headers=viewer)).json()
    paged = (await client.get(url(tenant, "telemetry/latest"), params={"limit": 2, "page": 2}, headers=viewer)).json()

    assert every["count"] == 3
    assert [(r["device_id"], r["sensor"], r["ts"], r["value"]) for r in every["results"]] == [
        ("boiler-1", "humidity", "2025-10-17T10:03:00Z", 60.0),
        ("boiler-1", "temp", "2025-10-17T10:14:00Z", 10.0),
        ("boiler-2", "temp", "2025-10-17T10:07:00Z", 50.0),
    ]
    assert [(r["device_id"], r["sensor"]) for r in temps["results"]] == [("boiler-1", "temp"), ("boiler-2", "temp")]
    assert (paged["count"], [r["device_id"] for r in paged["results"]], paged["next"]) == (3, ["boiler-2"], None)


# ---------------------------------------------------------------------------------------------------- rejected


async def test_rejected_readings_filtered_and_paginated(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str], db_session: AsyncSession
) -> None:
    rows = [
        ("mqtt", "boiler-1", "temp", "timestamp 2099-01-01T00:00:00Z is too far in the future", at(8, 0)),
        ("mqtt", "boiler-1", "temp", "value is not a number: 'hot'", at(9, 0)),
        ("http", "boiler-2", None, "malformed JSON: Expecting value", at(10, 0)),
        ("mqtt", "boiler-2", "temp", "100% wrong_value", at(11, 0)),
    ]
    await db_session.execute(
        text(
            f'INSERT INTO "{schema_for(tenant)}".rejected_readings (source, topic, device_id, sensor, reason, payload, '
            "received_at) VALUES (:source, :topic, :device, :sensor, :reason, '{}', :received)"
        ),
        [
            {
                "source": s,
                "topic": f"tenants/{tenant}/devices/{d}/sensors/{x}",
                "device": d,
                "sensor": x,
                "reason": r,
                "received": t,
            }
            for s, d, x, r, t in rows
        ],
    )

    async def reasons(**params: Any) -> list[str]:
        response = await client.get(url(tenant, "rejected"), params=params, headers=viewer)
        assert response.status_code == 200, response.text
        return [row["reason"] for row in response.json()["results"]]

    assert await reasons() == [row[3] for row in reversed(rows)]
    assert await reasons(reason="FUTURE") == [rows[0][3]]
    assert await reasons(reason="100%") == [rows[3][3]]
    assert await reasons(reason="0% w") == [rows[3][3]]
    assert await reasons(reason="%") == [rows[3][3]]
    assert await reasons(reason="_") == [rows[3][3]]
    assert await reasons(device="boiler-1") == [rows[1][3], rows[0][3]]
    assert await reasons(source="http") == [rows[2][3]]
    assert await reasons(**{"from": iso(at(9, 0)), "to": iso(at(11, 0))}) == [rows[2][3], rows[1][3]]
    page = (await client.get(url(tenant, "rejected"), params={"limit": 3}, headers=viewer)).json()
    assert page["count"] == 4 and len(page["results"]) == 3 and page["next"] is not None
    assert set(page["results"][0]) == {
        "id",
        "received_at",
        "source",
        "topic",
        "device_id",
        "sensor",
        "reason",
        "payload",
    }
    bad = await client.get(
        url(tenant, "rejected"), params={"from": iso(at(11, 0)), "to": iso(at(9, 0))}, headers=viewer
    )
    assert bad.status_code == 422
    assert (await client.get(url(tenant, "rejected"), params={"source": "smtp"}, headers=viewer)).status_code == 422


# ---------------------------------------------------------------------------------------------------- access


PATHS = (
    "telemetry/aggregates",
    "telemetry/readings",
    "telemetry/stats",
    "telemetry/latest",
    "telemetry/export.csv",
    "rejected",
)


async def test_tenants_see_only_their_own_data(
    client: httpx.AsyncClient, make_tenant: TenantFactory, db_session: AsyncSession, auth_headers: HeadersFactory
) -> None:
    first, second = await make_tenant(), await make_tenant()
    await seed(db_session, first, [("boiler-1", "temp", at(10, 0), 1.0)])
    await seed(db_session, second, [("boiler-1", "temp", at(10, 0), 2.0), ("boiler-1", "temp", at(10, 1), 4.0)])
    first_user = await auth_headers("admin", tenant=first)
    staff = await auth_headers("viewer", staff=True)
    no_tenant = await auth_headers("admin")

    for path in PATHS:
        denied = await client.get(
            url(second, path),
            params=RANGE if "latest" not in path and "rejected" not in path else {},
            headers=first_user,
        )
        assert denied.status_code == 403, (path, denied.text)
        assert denied.json()["error"]["code"] == "forbidden"
        assert (await client.get(url(second, path), headers=no_tenant)).status_code == 403
        assert (await client.get(url(second, path))).status_code == 401
        assert (await client.get(url("no-such-tenant", path), headers=staff)).status_code == 404

    own = await client.get(url(first, "telemetry/stats"), params=RANGE, headers=first_user)
    other_for_staff = await client.get(url(second, "telemetry/stats"), params=RANGE, headers=staff)
    own_again = await client.get(url(first, "telemetry/aggregates"), params={**RANGE, "bucket": "1h"}, headers=staff)
    assert (own.json()["count"], own.json()["avg"]) == (1, 1.0)
    assert (other_for_staff.json()["count"], other_for_staff.json()["avg"]) == (2, 3.0)
    assert [bucket["avg"] for bucket in own_again.json()["results"]] == [1.0]


# ---------------------------------------------------------------------------------------------------- plans


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


async def explain(session: AsyncSession, statement: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    document = await session.scalar(text("EXPLAIN (FORMAT JSON) " + statement.text), params)
    return list(plan_nodes(document[0]["Plan"]))


async def test_sensor_day_queries_use_the_primary_key_of_one_partition(
    make_tenant: TenantFactory, db_session: AsyncSession
) -> None:
    slug = await make_tenant()
    schema = schema_for(slug)
    days = [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    await ensure_partitions(db_session, schema, set(days))
    # 3 days x 10 devices x 2 sensors, one reading a minute: 86,400 rows, then fresh planner statistics.
    await db_session.execute(
        text(
            f'INSERT INTO "{schema}".readings (device_id, sensor, ts, value) '
            "SELECT 'dev-' || d, s, ts, random() FROM generate_series(1, 10) AS d, "
            "unnest(ARRAY['temp', 'humidity']) AS s, "
            "generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz), interval '1 minute') AS ts"
        ),
        {"start": at(0, 0, day=days[0]), "end": at(23, 59, day=days[-1])},
    )
    await db_session.execute(text(f'ANALYZE "{schema}".readings'))
    await db_session.execute(text(f'SET LOCAL search_path TO "{schema}", telemetry_ingest'))
    day_filter = ReadingFilter(start=at(0, 0), end=at(0, 0, day=DAY + timedelta(days=1)), device="dev-3", sensor="temp")
    grid = bucket_grid(day_filter.start, day_filter.end, parse_bucket("5m"))
    statements = {
        "aggregates": repository.aggregate_page_statement(
            day_filter, grid, fill="none", max_series=1, offset=0, limit=200
        ),
        "filled": repository.aggregate_page_statement(
            day_filter, grid, fill="previous", max_series=1, offset=0, limit=200
        ),
        "readings": repository.reading_page_statement(day_filter, offset=0, limit=500),
        "export": repository.reading_export_statement(day_filter, max_rows=1000),
    }
    day_partition = f"readings_p{DAY:%Y%m%d}"

    for name, (statement, params) in statements.items():
        nodes = await explain(db_session, statement, params)
        readings_scans = [node for node in nodes if str(node.get("Relation Name", "")).startswith("readings_p")]
        in_range = [node for node in readings_scans if node["Relation Name"] == day_partition]
        assert in_range, (name, nodes)
        # The sensors a page's units come from are one small table per tenant: only readings must never be scanned.
        assert not any(node["Node Type"] == "Seq Scan" for node in readings_scans), (
            name,
            [n["Node Type"] for n in nodes],
        )
        assert all(node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan") for node in in_range), (
            name,
            [node["Node Type"] for node in in_range],
        )
        index_names = {str(node.get("Index Name")) for node in nodes if "Index Name" in node}
        assert any(index.startswith(day_partition) and index.endswith("pkey") for index in index_names), index_names
        if name != "filled":
            # Partition pruning: only the day's partition is read (the filled query's look-back before the range
            # reads earlier days' primary keys for one row).
            assert {node["Relation Name"] for node in readings_scans} == {day_partition}, (name, readings_scans)
