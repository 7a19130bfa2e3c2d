"""CSV exports of readings and aggregates: content, GET and POST (form or JSON), the row cap, and a body streamed
from a connection of its own that is given back however the download ends.

The export reads on its own connection, so these tests commit their tenants and readings (`committed=True`;
the tenants are dropped when the run ends).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from mirante.auth.commands import create_user
from mirante.auth.models import User
from mirante.auth.tokens import TokenCodec
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.main import create_app
from telemetry_ingest.queries.buckets import bucket_grid, parse_bucket
from telemetry_ingest.queries.export import AGGREGATE_COLUMNS, RAW_COLUMNS, ExportPlan, csv_stream
from telemetry_ingest.queries.repository import ReadingFilter
from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.partitions import ensure_partitions

TenantFactory = Callable[..., Awaitable[str]]
Row = tuple[str, str, datetime, float, str | None]

START = datetime(2025, 10, 17, 10, 0, tzinfo=UTC)
RANGE = {"from": "2025-10-17T09:55:00Z", "to": "2025-10-17T10:20:00Z"}
SAMPLE: list[Row] = [
    ("boiler-1", "temp", START - timedelta(minutes=10), 5.0, "celsius"),
    ("boiler-1", "temp", START, 20.0, "celsius"),
    ("boiler-1", "temp", START + timedelta(minutes=4, seconds=59), 21.0, "celsius"),
    ("boiler-1", "temp", START + timedelta(minutes=1, seconds=30), 22.5, "celsius"),
    ("boiler-1", "temp", START + timedelta(minutes=14), 10.0, "celsius"),
    ("boiler-2", "temp", START + timedelta(minutes=7), 50.0, None),
    ("=cmd", "temp", START + timedelta(minutes=2), 1.0, "+unit"),
    ("boiler-1", "humidity", START + timedelta(minutes=3), 60.0, "%"),
]


def export_url(slug: str) -> str:
    return f"/api/v1/tenants/{slug}/telemetry/export.csv"


def parse(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body, newline="")))


async def seed(connection: AsyncConnection, slug: str, rows: list[Row]) -> None:
    schema = schema_for(slug)
    await ensure_partitions(connection, schema, {row[2].date() for row in rows})
    await connection.execute(
        text(f'INSERT INTO "{schema}".readings (device_id, sensor, ts, value, unit) VALUES (:d, :s, :ts, :v, :u)'),
        [{"d": d, "s": s, "ts": ts, "v": v, "u": u} for d, s, ts, v, u in rows],
    )
    # The sensors as the ingest records them: the unit is the first one a series' readings carried.
    units: dict[tuple[str, str], str | None] = {}
    for d, s, _ts, _v, u in rows:
        if units.get((d, s)) is None:
            units[d, s] = u
    await connection.execute(
        text(
            f'INSERT INTO "{schema}".devices (device_id, labels, first_seen, last_seen) '
            "VALUES (:d, '{}', now(), now())"
        ),
        [{"d": d} for d in sorted({d for d, _s in units})],
    )
    await connection.execute(
        text(
            f'INSERT INTO "{schema}".sensors (device_id, sensor, unit, labels, first_seen, last_seen) '
            "VALUES (:d, :s, :u, '{}', now(), now())"
        ),
        [{"d": d, "s": s, "u": u} for (d, s), u in units.items()],
    )


@pytest.fixture
async def tenant(make_tenant: TenantFactory, db_engine: AsyncEngine) -> str:
    # Ten years of retention: the sample day must outlive any retention sweep running meanwhile.
    slug = await make_tenant(committed=True, retention_days=3650)
    async with db_engine.begin() as connection:
        await seed(connection, slug, SAMPLE)
    return slug


@pytest.fixture
async def viewer(auth_headers: HeadersFactory, tenant: str) -> dict[str, str]:
    return await auth_headers("viewer", tenant=tenant)


async def test_raw_export_is_a_csv_of_every_matching_reading(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    response = await client.get(export_url(tenant), params={**RANGE, "sensor": "temp"}, headers=viewer)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith(f'attachment; filename="telemetry-{tenant}-raw-')
    assert response.headers["x-export-row-limit"] == "1000000"
    rows = parse(response.text)
    assert rows[0] == list(RAW_COLUMNS)
    # Cells that would start a formula are defused; where "=cmd" sorts among the others depends on the collation.
    assert [row[:5] for row in rows[1:] if row[0] == "'=cmd"] == [
        ["'=cmd", "temp", "2025-10-17T10:02:00Z", "1.0", "'+unit"]
    ]
    assert [row[:5] for row in rows[1:] if row[0] != "'=cmd"] == [
        ["boiler-1", "temp", "2025-10-17T10:00:00Z", "20.0", "celsius"],
        ["boiler-1", "temp", "2025-10-17T10:01:30Z", "22.5", "celsius"],
        ["boiler-1", "temp", "2025-10-17T10:04:59Z", "21.0", "celsius"],
        ["boiler-1", "temp", "2025-10-17T10:14:00Z", "10.0", "celsius"],
        ["boiler-2", "temp", "2025-10-17T10:07:00Z", "50.0", ""],
    ]
    assert all(datetime.fromisoformat(row[5]).tzinfo is not None for row in rows[1:])
    assert not any(line.startswith("# truncated") for line in response.text.splitlines())


async def test_aggregates_export_with_gap_filling(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    response = await client.get(
        export_url(tenant),
        params={
            **RANGE,
            "kind": "aggregates",
            "bucket": "5m",
            "fill": "previous",
            "device": "boiler-1",
            "sensor": "temp",
            "order": "asc",
        },
        headers=viewer,
    )

    assert response.status_code == 200, response.text
    rows = parse(response.text)
    assert rows[0] == list(AGGREGATE_COLUMNS)
    assert rows[1:] == [
        [
            "boiler-1",
            "temp",
            "2025-10-17T09:55:00Z",
            "2025-10-17T10:00:00Z",
            "5.0",
            "5.0",
            "5.0",
            "5.0",
            "0",
            "",
            "",
            "true",
            "celsius",
        ],
        [
            "boiler-1",
            "temp",
            "2025-10-17T10:00:00Z",
            "2025-10-17T10:05:00Z",
            "21.166666666666668",
            "20.0",
            "22.5",
            "21.0",
            "3",
            "2025-10-17T10:00:00Z",
            "2025-10-17T10:04:59Z",
            "false",
            "celsius",
        ],
        [
            "boiler-1",
            "temp",
            "2025-10-17T10:05:00Z",
            "2025-10-17T10:10:00Z",
            "21.0",
            "21.0",
            "21.0",
            "21.0",
            "0",
            "",
            "",
            "true",
            "celsius",
        ],
        [
            "boiler-1",
            "temp",
            "2025-10-17T10:10:00Z",
            "2025-10-17T10:15:00Z",
            "10.0",
            "10.0",
            "10.0",
            "10.0",
            "1",
            "2025-10-17T10:14:00Z",
            "2025-10-17T10:14:00Z",
            "false",
            "celsius",
        ],
        [
            "boiler-1",
            "temp",
            "2025-10-17T10:15:00Z",
            "2025-10-17T10:20:00Z",
            "10.0",
            "10.0",
            "10.0",
            "10.0",
            "0",
            "",
            "",
            "true",
            "celsius",
        ],
    ]
    assert "aggregates" in response.headers["content-disposition"]


@pytest.mark.parametrize("order", [None, "desc", "asc"])
async def test_aggregates_export_follows_the_order_of_the_aggregates_pages(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str], order: str | None
) -> None:
    params = {**RANGE, "bucket": "5m", **({"order": order} if order else {})}
    page = await client.get(f"/api/v1/tenants/{tenant}/telemetry/aggregates", params=params, headers=viewer)
    export = await client.get(export_url(tenant), params={**params, "kind": "aggregates"}, headers=viewer)

    assert page.status_code == 200, page.text
    assert export.status_code == 200, export.text
    body = page.json()
    assert body["query"]["order"] == (order or "desc")
    in_page = [(row["device_id"], row["sensor"], row["bucket"], row["unit"]) for row in body["results"]]
    rows = parse(export.text)
    unit = rows[0].index("unit")
    in_file = [(row[0], row[1], row[2], row[unit] or None) for row in rows[1:]]
    # The file defuses cells that would start a spreadsheet formula; the API gives them as they are.
    assert in_file == [(defused(d), s, b, defused(u)) for d, s, b, u in in_page]
    newest_first = [bucket for _d, _s, bucket, _u in in_page]
    assert newest_first == sorted(newest_first, reverse=order != "asc")
    # Each bucket carries its sensor's unit, as the ingest recorded it (none for a series sent without one).
    assert {(d, s): u for d, s, _b, u in in_page} == {
        ("boiler-1", "temp"): "celsius",
        ("boiler-1", "humidity"): "%",
        ("boiler-2", "temp"): None,
        ("=cmd", "temp"): "+unit",
    }


def defused(cell: str | None) -> str | None:
    return f"'{cell}" if cell and cell[0] in "=+-@" else cell


async def test_post_takes_a_form_or_json_and_answers_like_get(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str]
) -> None:
    params = {**RANGE, "kind": "aggregates", "bucket": "5m", "sensor": "temp"}
    by_get = await client.get(export_url(tenant), params=params, headers=viewer)
    by_form = await client.post(export_url(tenant), data=params, headers=viewer)
    by_json = await client.post(export_url(tenant), json=params, headers=viewer)
    by_multipart = await client.post(
        export_url(tenant), files={name: (None, value) for name, value in params.items()}, headers=viewer
    )

    assert by_get.status_code == 200, by_get.text
    assert len(parse(by_get.text)) == 1 + 4
    for response in (by_form, by_json, by_multipart):
        assert response.status_code == 200, response.text
        assert response.text == by_get.text


async def test_export_refuses_bad_requests_before_streaming(
    client: httpx.AsyncClient, tenant: str, viewer: dict[str, str], auth_headers: HeadersFactory
) -> None:
    url = export_url(tenant)
    cases = [
        (await client.get(url, params={"kind": "aggregates", "bucket": "P1Y"}, headers=viewer), 422, "months"),
        (await client.get(url, params={"kind": "parquet"}, headers=viewer), 422, "kind"),
        (await client.get(url, params={**RANGE, "from": RANGE["to"]}, headers=viewer), 422, "before `to`"),
        (await client.post(url, json={"kind": "aggregates", "bucket": "0s"}, headers=viewer), 422, "positive"),
        (await client.post(url, json={"devices": "x"}, headers=viewer), 422, "body.devices"),
        (await client.post(url, data={**RANGE, "device": ""}, headers=viewer), 422, "body.device"),
        (await client.post(url, json=["raw"], headers=viewer), 422, "JSON body must be an object"),
        (
            await client.post(url, content=b"{oops", headers={**viewer, "content-type": "application/json"}),
            422,
            "not valid JSON",
        ),
        (
            await client.post(url, content=b"kind=raw", headers={**viewer, "content-type": "text/plain"}),
            415,
            "form or as JSON",
        ),
        (
            await client.post(url, params={"kind": "raw"}, data={"kind": "aggregates"}, headers=viewer),
            422,
            "both in the query string and in the body",
        ),
        (await client.post(url, files={"file": ("a.csv", b"x")}, headers=viewer), 422, "no files"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.text, response.text
    other_tenant = await auth_headers("viewer", tenant="someone-else")
    assert (await client.post(url, data={"kind": "raw"}, headers=other_tenant)).status_code == 403


async def test_export_is_cut_at_the_configured_cap(
    make_client: ClientFactory, infra_settings: InfraSettings, tenant: str, viewer: dict[str, str]
) -> None:
    client = await make_client(create_app(Settings(infra=infra_settings, export_max_rows=4, mqtt_ingest_enabled=False)))

    cut = await client.get(export_url(tenant), params=RANGE, headers=viewer)
    exact = await client.get(export_url(tenant), params={**RANGE, "device": "boiler-1"}, headers=viewer)
    buckets = await client.post(
        export_url(tenant), json={**RANGE, "kind": "aggregates", "bucket": "5m", "fill": "null"}, headers=viewer
    )

    assert cut.headers["x-export-row-limit"] == "4"
    cut_lines = cut.text.splitlines()
    assert len(cut_lines) == 1 + 4 + 1
    assert cut_lines[-1].startswith("# truncated: the export stopped at 4 rows")
    # boiler-1 has exactly 4 readings in range (temperature) plus 1 humidity: 5, so cut; with the sensor, 4: whole.
    exact_whole = await client.get(
        export_url(tenant), params={**RANGE, "device": "boiler-1", "sensor": "temp"}, headers=viewer
    )
    assert exact.text.splitlines()[-1].startswith("# truncated")
    assert len(exact_whole.text.splitlines()) == 1 + 4
    assert not exact_whole.text.splitlines()[-1].startswith("#")
    assert buckets.text.splitlines()[-1].startswith("# truncated") and len(buckets.text.splitlines()) == 6


async def test_the_stream_holds_one_connection_only_while_it_runs(db_engine: AsyncEngine, tenant: str) -> None:
    filters = ReadingFilter(start=START - timedelta(hours=1), end=START + timedelta(hours=1))
    plan = ExportPlan(schema=schema_for(tenant), kind="raw", filters=filters, max_rows=100)
    before = db_engine.pool.checkedout()  # type: ignore[attr-defined]

    stream = csv_stream(db_engine, plan, chunk_rows=2)
    assert db_engine.pool.checkedout() == before  # type: ignore[attr-defined]
    chunks = [chunk async for chunk in stream]
    assert db_engine.pool.checkedout() == before  # type: ignore[attr-defined]
    assert chunks[0] == b"device_id,sensor,ts,value,unit,received_at\r\n"
    assert len(chunks) == 1 + 4  # 8 readings, 2 per fetch
    assert b"".join(chunks).count(b"\r\n") == 1 + 8

    abandoned = csv_stream(db_engine, plan, chunk_rows=2)
    await abandoned.__anext__()
    await abandoned.__anext__()
    assert db_engine.pool.checkedout() == before + 1  # type: ignore[attr-defined]
    await abandoned.aclose()
    assert db_engine.pool.checkedout() == before  # type: ignore[attr-defined]

    grid = bucket_grid(filters.start, filters.end, parse_bucket("1h"))
    hourly = ExportPlan(schema=schema_for(tenant), kind="aggregates", filters=filters, max_rows=100, grid=grid)
    lines = parse(b"".join([chunk async for chunk in csv_stream(db_engine, hourly)]).decode())
    assert len(lines) == 1 + 5
    assert [(line[0], line[1], line[2], line[8]) for line in lines[1:] if line[0] != "'=cmd"] == [
        ("boiler-1", "humidity", "2025-10-17T10:00:00Z", "1"),
        ("boiler-1", "temp", "2025-10-17T10:00:00Z", "4"),
        ("boiler-2", "temp", "2025-10-17T10:00:00Z", "1"),
        ("boiler-1", "temp", "2025-10-17T09:00:00Z", "1"),
    ]


async def test_export_without_the_test_session_reads_on_its_own_connection(
    db_engine: AsyncEngine, infra_settings: InfraSettings, tenant: str
) -> None:
    """The production path: the request's session ends with the endpoint, before the body is sent; the body comes
    from the export's own connection, which reads only committed data."""
    name = f"export-{uuid.uuid4().hex[:10]}"
    async with AsyncSession(db_engine, expire_on_commit=False) as session, session.begin():
        user = await create_user(session, username=name, password="export-password-1", role="viewer", tenant=tenant)
    token = TokenCodec.from_settings(infra_settings.jwt).issue(user.id, username=name, role="viewer", tenant=tenant)
    settings = Settings(
        infra=infra_settings, upgrade_tenants_on_start=False, retention_enabled=False, mqtt_ingest_enabled=False
    )
    app: FastAPI = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.post(
                    export_url(tenant),
                    data={**RANGE, "device": "boiler-2"},
                    headers={"Authorization": f"Bearer {token.token}"},
                )
            assert response.status_code == 200, response.text
            assert [row[:4] for row in parse(response.text)[1:]] == [
                ["boiler-2", "temp", "2025-10-17T10:07:00Z", "50.0"]
            ]
    finally:
        async with AsyncSession(db_engine) as session, session.begin():
            await session.execute(delete(User).where(User.id == user.id))
