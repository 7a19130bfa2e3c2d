"""The staff-only ops panel in headless Chromium against a real server.

The app runs under uvicorn on a free 127.0.0.1 port on this run's database (MQTT ingest and retention off), so
the tenants, users and readings it shows are committed: two tenants created through the tenant service (their
schemas are dropped when the run ends) with readings, devices and sensors written straight into their tables.
The browser, pages and server come from the `mirante` plugin (`mirante.testing.browser`). The browser runs in
São Paulo time with an English locale, so the pages' UTC times and number formats are checked as shown.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_sessionmaker
from mirante.settings import InfraSettings
from mirante.testing.browser import LiveServer, PageOpener, sign_in
from telemetry_ingest.config import Settings
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy import service
from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.partitions import ensure_partitions

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package")
expect = playwright_api.expect

PASSWORD = "ops-pages-pass-1234"
HOSTILE = '<img src=x onerror="window.__xss = 1">'
DASH = "\N{EN DASH}"
BROWSER = {"locale": "en-US", "timezone_id": "America/Sao_Paulo"}
H0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
"""The first hour of the seeded readings: three days back, so "the last 24 hours" never holds them."""
RANGE_END = H0 + timedelta(hours=3)


def at(minutes: float) -> datetime:
    return H0 + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def shown_time(moment: datetime) -> str:
    """A time as the pages show it: UTC, to the second."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def shown_value(value: float) -> str:
    """A value as the pages show it: at most four decimals, no grouping."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


Reading = tuple[str, str, datetime, float, str | None]

# boiler-1/temperature: 99 just before the range; 20, 22, 24 in the first hour; 30, 10 in the second; 15.5 in the
# third. boiler-1/pressure: one reading in each of the first two hours. chiller-2/temperature: 7.25 and 6.75 in the
# first hour, with markup for a unit. logger-9/humidity: 1,200 readings a minute apart, ending before the range.
HOSTILE_UNIT = "<b>°C</b>"
READINGS: list[Reading] = [
    ("boiler-1", "temperature", at(-30), 99.0, "celsius"),
    ("boiler-1", "temperature", at(0), 20.0, "celsius"),
    ("boiler-1", "temperature", at(20), 22.0, "celsius"),
    ("boiler-1", "temperature", at(40), 24.0, "celsius"),
    ("boiler-1", "temperature", at(70), 30.0, "celsius"),
    ("boiler-1", "temperature", at(110), 10.0, "celsius"),
    ("boiler-1", "temperature", at(150), 15.5, "celsius"),
    ("boiler-1", "pressure", at(5), 101.325, "kPa"),
    ("boiler-1", "pressure", at(65), 101.5, "kPa"),
    ("chiller-2", "temperature", at(15), 7.25, HOSTILE_UNIT),
    ("chiller-2", "temperature", at(45), 6.75, HOSTILE_UNIT),
]
LOGGER_COUNT = 1200
LOGGER_START = H0 - timedelta(hours=21)
LOGGER: list[Reading] = [
    ("logger-9", "humidity", LOGGER_START + timedelta(minutes=index), 40 + (index % 60) / 4, "%")
    for index in range(LOGGER_COUNT)
]
OTHER_TENANT_READINGS: list[Reading] = [("boiler-1", "temperature", at(10), 500.0, "celsius")]


@dataclass(frozen=True)
class Bucket:
    start: datetime
    device: str
    sensor: str
    avg: float
    min: float
    max: float
    last: float
    count: int
    first_ts: datetime
    last_ts: datetime


HOUR = timedelta(hours=1)
# 1-hour buckets of [H0, H0 + 3 h), as the API orders them: newest bucket first, then device and sensor.
HOURLY = [
    Bucket(H0 + 2 * HOUR, "boiler-1", "temperature", 15.5, 15.5, 15.5, 15.5, 1, at(150), at(150)),
    Bucket(H0 + HOUR, "boiler-1", "pressure", 101.5, 101.5, 101.5, 101.5, 1, at(65), at(65)),
    Bucket(H0 + HOUR, "boiler-1", "temperature", 20.0, 10.0, 30.0, 10.0, 2, at(70), at(110)),
    Bucket(H0, "boiler-1", "pressure", 101.325, 101.325, 101.325, 101.325, 1, at(5), at(5)),
    Bucket(H0, "boiler-1", "temperature", 22.0, 20.0, 24.0, 24.0, 3, at(0), at(40)),
    Bucket(H0, "chiller-2", "temperature", 7.0, 6.75, 7.25, 6.75, 2, at(15), at(45)),
]


# -- a seeded server -----------------------------------------------------------------------------------------


@dataclass
class Site:
    """The running server, its two tenants, and its users (username and token by kind)."""

    url: str
    tenant: str
    other_tenant: str
    users: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def query(self, path: str, **params: Any) -> str:
        return f"{path}?{urlencode({'tenant_slug': self.tenant, **params})}"


async def seed_readings(session: AsyncSession, slug: str, readings: list[Reading]) -> None:
    """Readings, their devices and sensors, and each series' newest reading, straight into the tenant's tables."""
    schema = schema_for(slug)
    await ensure_partitions(session, schema, {ts.date() for _d, _s, ts, _v, _u in readings})
    await session.execute(
        text(f'INSERT INTO "{schema}".readings (device_id, sensor, ts, value, unit) VALUES (:d, :s, :ts, :v, :u)'),
        [{"d": d, "s": s, "ts": ts, "v": v, "u": u} for d, s, ts, v, u in readings],
    )
    await session.execute(
        text(
            f'INSERT INTO "{schema}".latest_readings (device_id, sensor, ts, value, unit) '
            f'SELECT DISTINCT ON (device_id, sensor) device_id, sensor, ts, value, unit FROM "{schema}".readings '
            "ORDER BY device_id, sensor, ts DESC"
        )
    )
    await session.execute(
        text(
            f'INSERT INTO "{schema}".devices (device_id, first_seen, last_seen) '
            f'SELECT device_id, min(ts), max(ts) FROM "{schema}".readings GROUP BY device_id'
        )
    )
    await session.execute(
        text(
            f'INSERT INTO "{schema}".sensors (device_id, sensor, unit, first_seen, last_seen) '
            f'SELECT device_id, sensor, min(unit), min(ts), max(ts) FROM "{schema}".readings GROUP BY 1, 2'
        )
    )
    await session.execute(
        text(
            f"UPDATE \"{schema}\".devices SET name = 'Boiler one', site = 'Plant A', "
            "labels = CAST(:labels AS jsonb) WHERE device_id = 'boiler-1'"
        ),
        {"labels": json.dumps({"floor": "3"})},
    )
    await session.execute(
        text(f"UPDATE \"{schema}\".sensors SET name = :name WHERE device_id = 'chiller-2'"), {"name": HOSTILE}
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(
    db_engine: AsyncEngine, infra_settings: InfraSettings, committed_tenant_slugs: list[str]
) -> AsyncIterator[Site]:
    """The server every test browses, with committed tenants, readings and users."""
    tenant, other = f"ops{uuid.uuid4().hex[:10]}", f"ops{uuid.uuid4().hex[:10]}"
    sessions = create_sessionmaker(db_engine)
    async with sessions() as session, session.begin():
        await service.create_tenant(session, slug=tenant, name=f"Hospital {HOSTILE}")
        await service.create_tenant(session, slug=other, name="Other tenant")
        # Nobody consumes these events: keep them off the shared stream.
        await session.execute(
            text("DELETE FROM telemetry_ingest.outbox WHERE tenant = ANY(:slugs)"), {"slugs": [tenant, other]}
        )
    committed_tenant_slugs.extend([tenant, other])
    site = Site(url="", tenant=tenant, other_tenant=other)
    codec = TokenCodec.from_settings(infra_settings.jwt)
    async with sessions() as session, session.begin():
        await seed_readings(session, tenant, READINGS + LOGGER)
        await seed_readings(session, other, OTHER_TENANT_READINGS)
        kinds: dict[str, dict[str, Any]] = {
            "staff": {"staff": True},
            "tenant_user": {"tenant": tenant},
            "outsider": {},
        }
        for kind, claims in kinds.items():
            user = await create_user(
                session, username=f"ops-{kind}-{uuid.uuid4().hex[:8]}", password=PASSWORD, role="viewer", **claims
            )
            site.users[kind] = user.username
            site.tokens[kind] = codec.issue(
                user.id, username=user.username, role=user.role, staff=user.is_staff, tenant=user.tenant
            ).token
    settings = Settings(
        infra=infra_settings, mqtt_ingest_enabled=False, retention_enabled=False, upgrade_tenants_on_start=False
    )
    async with LiveServer(create_app(settings)) as server:
        site.url = server.url
        yield site


async def open_as(open_page: PageOpener, site: Site, kind: str | None) -> Any:
    """A page on `site` in a fresh browser profile, signed in as the user of `kind` (None: signed out)."""
    return await open_page(site.url, token=None if kind is None else site.tokens[kind], **BROWSER)


async def texts(page: Any, selector: str) -> list[str]:
    result: list[str] = await page.locator(selector).evaluate_all("nodes => nodes.map(node => node.textContent)")
    return result


def bucket_texts(buckets: list[Bucket]) -> dict[str, list[str]]:
    return {
        "bucket": [shown_time(bucket.start) for bucket in buckets],
        "device": [bucket.device for bucket in buckets],
        "sensor": [bucket.sensor for bucket in buckets],
        "avg": [shown_value(bucket.avg) for bucket in buckets],
        "min": [shown_value(bucket.min) for bucket in buckets],
        "max": [shown_value(bucket.max) for bucket in buckets],
        "last": [shown_value(bucket.last) for bucket in buckets],
        "count": [str(bucket.count) for bucket in buckets],
    }


async def expect_buckets(page: Any, buckets: list[Bucket]) -> None:
    await expect(page.locator("#aggregates-body tr[data-device]")).to_have_count(len(buckets))
    for column, wanted in bucket_texts(buckets).items():
        assert await texts(page, f"#aggregates-body td.{column}") == wanted, column


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def read_download(download: Any) -> str:
    saved = Path(await download.path())
    return await asyncio.to_thread(saved.read_text, encoding="utf-8")


# -- the tests -----------------------------------------------------------------------------------------------


async def test_pages_carry_the_security_headers_and_no_inline_code(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        for path in ("/ops/", "/ops/telemetry", "/ops/telemetry/drilldown"):
            page = await client.get(path, params={"tenant_slug": site.tenant})
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
            policy = page.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "script-src 'self'" in policy, path
            assert "frame-ancestors 'none'" in policy, path
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["referrer-policy"] == "no-referrer"
            assert "<script>" not in page.text and "style=" not in page.text, "no inline scripts or styles"
            assert re.search(r'src="/static/ops\.js\?v=[0-9a-f]+"', page.text), path
        script = await client.get("/static/ops-drilldown.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert (await client.get("/ops", follow_redirects=False)).headers.get("location", "").endswith("/ops/")
        assert (await client.get("/static/..%2Fconfig.py")).status_code == 404


async def test_staff_sign_in_choose_a_tenant_query_and_page_through_the_buckets(
    site: Site, open_page: PageOpener
) -> None:
    page = await open_as(open_page, site, None)
    await page.goto("/ops/")
    await expect(page).to_have_url(f"{site.url}/login?next=%2Fops%2F")
    await sign_in(page, site.users["staff"], PASSWORD, next_path="/ops/")
    await expect(page).to_have_url(f"{site.url}/ops/")
    await expect(page.locator("#whoami")).to_have_text(f"{site.users['staff']} · viewer")

    tenant = page.locator("#f-tenant_slug")
    await expect(tenant.locator(f'option[value="{site.tenant}"]')).to_have_text(f"Hospital {HOSTILE} ({site.tenant})")
    await expect(tenant.locator(f'option[value="{site.other_tenant}"]')).to_have_text(
        f"Other tenant ({site.other_tenant})"
    )
    await tenant.select_option(site.tenant)
    suggestions = page.locator("#device-options option")
    await expect(suggestions).to_have_count(3)
    assert await suggestions.evaluate_all("options => options.map(o => o.value)") == [
        "boiler-1",
        "chiller-2",
        "logger-9",
    ]
    await page.fill("#f-from", iso(H0))
    await page.fill("#f-to", iso(RANGE_END))
    await page.fill("#f-limit", "4")
    await page.click("#query-submit")

    await expect(page).to_have_url(re.compile(r"/ops/telemetry\?"))
    assert query_of(page.url) == {
        "tenant_slug": site.tenant,
        "from": iso(H0),
        "to": iso(RANGE_END),
        "bucket": "1h",
        "limit": "4",
    }
    await expect_buckets(page, HOURLY[:4])
    await expect(page.locator("#tenant-name")).to_have_text(f"· Hospital {HOSTILE}")
    await expect(page.locator('#query-summary [data-field="bucket"]')).to_have_text("1h")
    await expect(page.locator("#page-summary")).to_have_text(f"1{DASH}4 of 6 buckets")
    await expect(page.locator("#page-number")).to_have_text("Page 1 of 2")
    await expect(page.locator("#page-prev")).to_be_disabled()

    await page.click("#page-next")
    await expect(page).to_have_url(re.compile(r"[?&]page=2(&|$)"))
    await expect_buckets(page, HOURLY[4:])
    await expect(page.locator("#page-summary")).to_have_text(f"5{DASH}6 of 6 buckets")
    await expect(page.locator("#page-next")).to_be_disabled()

    await page.go_back()
    await expect_buckets(page, HOURLY[:4])

    # The filters go back to the form as they were.
    await page.click("#edit-filters")
    await expect(page).to_have_url(re.compile(r"/ops/\?"))
    await expect(page.locator("#f-tenant_slug")).to_have_value(site.tenant)
    await expect(page.locator("#f-from")).to_have_value(iso(H0))
    await expect(page.locator("#f-to")).to_have_value(iso(RANGE_END))
    await expect(page.locator("#f-limit")).to_have_value("4")
    await expect(page.locator("#f-bucket")).to_have_value("1h")


async def test_a_bookmarked_query_opens_after_signing_in(site: Site, open_page: PageOpener) -> None:
    page = await open_as(open_page, site, None)
    wanted = site.query(
        "/ops/telemetry", device_id="boiler-1", sensor_id="temperature", to=iso(RANGE_END), bucket="1h", limit=200
    )
    await page.goto(wanted)
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.fill("#username", site.users["staff"])
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page).to_have_url(f"{site.url}{wanted}")
    # `to` alone: the 24 hours before it, so the reading just before H0 is in as a bucket of its own.
    before = Bucket(H0 - HOUR, "boiler-1", "temperature", 99.0, 99.0, 99.0, 99.0, 1, at(-30), at(-30))
    temperature = [bucket for bucket in HOURLY if bucket.device == "boiler-1" and bucket.sensor == "temperature"]
    await expect_buckets(page, [*temperature, before])
    await expect(page.locator('#query-summary [data-field="range"]')).to_contain_text(
        f"{shown_time(RANGE_END - timedelta(hours=24))} {DASH} {shown_time(RANGE_END)}"
    )


async def test_a_custom_bucket_and_the_other_tenant(site: Site, open_page: PageOpener) -> None:
    page = await open_as(open_page, site, "staff")
    await page.goto(site.query("/ops/", **{"from": iso(H0), "to": iso(RANGE_END)}))
    await expect(page.locator("#f-tenant_slug")).to_have_value(site.tenant)
    await page.select_option("#f-bucket", "custom")
    await expect(page.locator("#f-bucket-custom")).to_be_visible()

    await page.fill("#f-bucket-custom", "half an hour")
    await page.click("#query-submit")
    await expect(page.locator("#form-error")).to_contain_text("A custom bucket is")
    await expect(page).to_have_url(re.compile(r"/ops/\?"))

    await page.fill("#f-bucket-custom", "30m")
    await page.click("#query-submit")
    await expect(page).to_have_url(re.compile(r"[?&]bucket=30m(&|$)"))
    await expect(page.locator('#query-summary [data-field="bucket"]')).to_have_text("30m (custom)")
    await expect(page.locator("#page-summary")).to_have_text(f"1{DASH}9 of 9 buckets")
    first_half_hour = page.locator(
        f'#aggregates-body tr[data-device="boiler-1"][data-sensor="temperature"][data-bucket="{iso(H0)}"]'
    )
    await expect(first_half_hour.locator("td.avg")).to_have_text("21")
    await expect(first_half_hour.locator("td.count")).to_have_text("2")

    # Staff see every tenant: the other one has its own reading, and only that.
    await page.goto(
        f"/ops/telemetry?{urlencode({'tenant_slug': site.other_tenant, 'from': iso(H0), 'to': iso(RANGE_END)})}"
    )
    await expect(page.locator("#aggregates-body tr[data-device]")).to_have_count(1)
    await expect(page.locator("#aggregates-body td.avg")).to_have_text("500")


async def test_bad_filters_get_the_apis_message(site: Site, open_page: PageOpener) -> None:
    page = await open_as(open_page, site, "staff")
    await page.goto(site.query("/ops/telemetry", bucket="0m"))
    await expect(page.locator("#page-state")).to_contain_text("positive duration")
    await expect(page.locator("#page-state .page-state-title")).to_have_text("The request was refused")
    await expect(page.locator("#aggregates-table")).to_be_hidden()
    await expect(page.locator("#export-csv")).to_be_disabled()

    await page.goto(site.query("/ops/telemetry", **{"from": iso(RANGE_END), "to": iso(H0)}))
    await expect(page.locator("#page-state")).to_contain_text("must be before")

    await page.goto("/ops/telemetry?tenant_slug=nosuchtenant")
    await expect(page.locator("#page-state")).to_contain_text("nosuchtenant")

    # Shorter ISO 8601 forms (no zone, no seconds) are UTC, sent to the API as the RFC 3339 date-times it takes.
    await page.goto(site.query("/ops/telemetry", **{"from": H0.strftime("%Y-%m-%dT%H:%M"), "to": iso(RANGE_END)}))
    await expect(page.locator("#aggregates-body tr[data-device]").first).to_be_visible()
    await expect(page.locator("#page-state")).to_be_hidden()

    # A value of the wrong shape is left out, and the page says so.
    await page.goto(site.query("/ops/telemetry", **{"from": "yesterday", "to": iso(RANGE_END)}))
    await expect(page.locator("#url-notice")).to_contain_text("from: not an ISO 8601 time")
    await expect(page.locator("#aggregates-body tr[data-device]").first).to_be_visible()


async def test_drill_down_shows_statistics_a_chart_and_the_readings(site: Site, open_page: PageOpener) -> None:
    page = await open_as(open_page, site, "staff")
    await page.goto(site.query("/ops/telemetry", **{"from": iso(H0), "to": iso(RANGE_END)}))
    row = page.locator(
        f'#aggregates-body tr[data-device="boiler-1"][data-sensor="temperature"][data-bucket="{iso(H0)}"]'
    )
    await row.locator("a.drilldown").click()

    await expect(page).to_have_url(re.compile(r"/ops/telemetry/drilldown\?"))
    assert query_of(page.url) == {
        "tenant_slug": site.tenant,
        "device_id": "boiler-1",
        "sensor_id": "temperature",
        "from": iso(H0),
        "to": iso(RANGE_END),
    }
    await expect(page.locator("#series-title")).to_have_text("boiler-1 · temperature")
    await expect(page.locator('#window-summary [data-field="tenant"]')).to_have_text(
        f"Hospital {HOSTILE} ({site.tenant})"
    )
    await expect(page.locator('#window-summary [data-field="window"]')).to_have_text(
        f"{shown_time(H0)} {DASH} {shown_time(RANGE_END)}"
    )
    values = [20.0, 22.0, 24.0, 30.0, 10.0, 15.5]
    stats = page.locator("#stats")
    await expect(stats.locator('[data-stat="count"] .card-value')).to_have_text("6")
    await expect(stats.locator('[data-stat="avg"] .card-value')).to_have_text(shown_value(sum(values) / len(values)))
    await expect(stats.locator('[data-stat="min"] .card-value')).to_have_text("10")
    await expect(stats.locator('[data-stat="max"] .card-value')).to_have_text("30")
    await expect(stats.locator('[data-stat="first"]')).to_contain_text(shown_time(at(0)))
    await expect(stats.locator('[data-stat="last"] .card-value')).to_have_text("15.5")

    points = page.locator("#chart circle.point")
    await expect(points).to_have_count(6)
    # In time order, higher values higher up the chart.
    plotted = await points.evaluate_all(
        "points => points.map(p => [p.dataset.value, Number(p.getAttribute('cx')), Number(p.getAttribute('cy'))])"
    )
    assert [float(value) for value, _x, _y in plotted] == values
    xs = [x for _value, x, _y in plotted]
    assert xs == sorted(xs) and len(set(xs)) == 6
    by_value = sorted(plotted, key=lambda point: float(point[0]))
    assert [y for _v, _x, y in by_value] == sorted((y for _v, _x, y in by_value), reverse=True)

    assert await texts(page, "#readings-body td.value") == [shown_value(value) for value in reversed(values)]
    await expect(page.locator("#readings-body td.unit").first).to_have_text("celsius")
    await expect(page.locator("#readings-caption")).to_have_text("(6 of 6)")
    await expect(page.locator('#metadata [data-field="device-name"]')).to_have_text("Boiler one")
    await expect(page.locator('#metadata [data-field="site"]')).to_have_text("Plant A")
    await expect(page.locator('#metadata [data-field="device-labels"]')).to_have_text('{"floor":"3"}')
    await expect(page.locator('#metadata [data-field="sensor-unit"]')).to_have_text("celsius")


async def test_a_drill_down_without_a_range_shows_the_latest_thousand_readings(
    site: Site, open_page: PageOpener
) -> None:
    page = await open_as(open_page, site, "staff")
    await page.goto(site.query("/ops/telemetry/drilldown", device_id="logger-9", sensor_id="humidity"))

    newest = LOGGER[-1][2]
    await expect(page.locator('#window-summary [data-field="window"]')).to_contain_text(
        "24 hours up to the newest reading"
    )
    await expect(page.locator("#readings-body tr[data-ts]")).to_have_count(1000)
    await expect(page.locator("#chart circle.point")).to_have_count(1000)
    await expect(page.locator("#readings-body td.ts").first).to_have_text(shown_time(newest))
    values = [value for _d, _s, _ts, value, _u in LOGGER]
    await expect(page.locator('#stats [data-stat="count"] .card-value')).to_have_text("1,200")
    await expect(page.locator('#stats [data-stat="avg"] .card-value')).to_have_text(
        shown_value(sum(values) / len(values))
    )
    await expect(page.locator('#stats [data-stat="max"] .card-value')).to_have_text(shown_value(max(values)))
    await expect(page.locator("#page-summary")).to_have_text(f"1{DASH}1,000 of 1,200 readings")

    await page.click("#page-next")
    await expect(page).to_have_url(re.compile(r"[?&]page=2(&|$)"))
    await expect(page.locator("#readings-body tr[data-ts]")).to_have_count(200)
    await expect(page.locator("#chart circle.point")).to_have_count(200)
    await expect(page.locator("#readings-body td.ts").last).to_have_text(shown_time(LOGGER[0][2]))
    # The window is pinned once paging starts, so "newest" cannot move under the pages.
    pinned = query_of(page.url)
    assert pinned["to"] and pinned["from"]


async def test_csv_exports_are_posted_and_hold_the_query(site: Site, open_page: PageOpener) -> None:
    page = await open_as(open_page, site, "staff")
    await page.goto(site.query("/ops/telemetry", **{"from": iso(H0), "to": iso(RANGE_END), "limit": 2}))
    await expect(page.locator("#export-csv")).to_be_enabled()

    async with (
        page.expect_request(lambda request: request.url.endswith("/telemetry/export.csv")) as sent,
        page.expect_download() as download_info,
    ):
        await page.click("#export-csv")
    request = await sent.value
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {site.tokens['staff']}"
    assert "cookie" not in request.headers
    assert json.loads(request.post_data or "{}") == {
        "kind": "aggregates",
        "bucket": "1h",
        "from": iso(H0),
        "to": iso(RANGE_END),
    }
    download = await download_info.value
    assert re.fullmatch(rf"telemetry-{site.tenant}-aggregates-\d{{8}}T\d{{6}}Z\.csv", download.suggested_filename)
    rows = list(csv.reader(io.StringIO(await read_download(download))))
    assert rows[0] == [
        "device_id", "sensor", "bucket", "bucket_end", "avg", "min", "max", "last", "count", "first_ts", "last_ts",
        "filled",
    ]  # fmt: skip
    # Every bucket of the query, not only the page shown; series after series, each in time order.
    in_file_order = sorted(HOURLY, key=lambda bucket: (bucket.device, bucket.sensor, bucket.start))
    assert rows[1:] == [
        [
            bucket.device,
            bucket.sensor,
            iso(bucket.start),
            iso(bucket.start + HOUR),
            repr(bucket.avg),
            repr(bucket.min),
            repr(bucket.max),
            repr(bucket.last),
            str(bucket.count),
            iso(bucket.first_ts),
            iso(bucket.last_ts),
            "false",
        ]
        for bucket in in_file_order
    ]

    # The drill-down exports the raw readings of its window.
    await page.goto(
        site.query(
            "/ops/telemetry/drilldown",
            device_id="chiller-2",
            sensor_id="temperature",
            **{"from": iso(H0), "to": iso(RANGE_END)},
        )
    )
    await expect(page.locator("#export-csv")).to_be_enabled()
    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    raw = list(csv.reader(io.StringIO(await read_download(await download_info.value))))
    assert [row[:5] for row in raw] == [
        ["device_id", "sensor", "ts", "value", "unit"],
        ["chiller-2", "temperature", iso(at(15)), "7.25", HOSTILE_UNIT],
        ["chiller-2", "temperature", iso(at(45)), "6.75", HOSTILE_UNIT],
    ]


async def test_text_from_tenants_and_devices_is_shown_never_run(site: Site, open_page: PageOpener) -> None:
    page = await open_as(open_page, site, "staff")
    await page.goto(
        site.query(
            "/ops/telemetry/drilldown",
            device_id="chiller-2",
            sensor_id="temperature",
            **{"from": iso(H0), "to": iso(RANGE_END)},
        )
    )
    await expect(page.locator("#readings-body td.unit")).to_have_text([HOSTILE_UNIT, HOSTILE_UNIT])
    await expect(page.locator('#metadata [data-field="sensor-name"]')).to_have_text(HOSTILE)
    await page.goto(site.query("/ops/telemetry", **{"from": iso(H0), "to": iso(RANGE_END)}))
    await expect(page.locator("#tenant-name")).to_have_text(f"· Hospital {HOSTILE}")
    assert await page.locator("main img, main b").count() == 0
    assert await page.evaluate("window.__xss") is None


@pytest.mark.parametrize("kind", ["tenant_user", "outsider"])
async def test_non_staff_accounts_get_a_403_page(site: Site, open_page: PageOpener, kind: str) -> None:
    page = await open_as(open_page, site, kind)
    tenant_calls: list[str] = []
    page.on("request", lambda request: tenant_calls.append(request.url) if "/api/v1/tenants" in request.url else None)
    for path in (
        site.query("/ops/"),
        site.query("/ops/telemetry", bucket="1h"),
        site.query("/ops/telemetry/drilldown", device_id="boiler-1", sensor_id="temperature"),
    ):
        await page.goto(path)
        await expect(page.locator("#denied")).to_be_visible()
        await expect(page.locator("#denied h1")).to_have_text("403 · Staff only")
        await expect(page.locator("#denied-text")).to_contain_text("open to staff accounts only")
        await expect(page.locator("#content")).to_be_hidden()
    # The pages refuse before asking for any tenant's data, even the tenant user's own.
    assert tenant_calls == []

    # And the API refuses them every tenant but their own.
    headers = {"Authorization": f"Bearer {site.tokens[kind]}"}
    async with httpx.AsyncClient(base_url=site.url, headers=headers) as client:
        aggregates = f"/api/v1/tenants/{site.other_tenant}/telemetry/aggregates"
        refused = await client.get(aggregates)
        assert refused.status_code == 403, refused.text
        export = await client.post(
            f"/api/v1/tenants/{site.other_tenant}/telemetry/export.csv", json={"kind": "aggregates"}
        )
        assert export.status_code == 403, export.text


async def test_a_query_without_readings_says_what_to_change(site: Site, open_page: PageOpener) -> None:
    page = await open_as(open_page, site, "staff")
    await page.goto(site.query("/ops/telemetry", **{"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"}))
    empty = page.locator("#aggregates-body .empty-state")
    await expect(empty.locator(".empty-state-title")).to_have_text("No readings match this query.")
    await expect(empty.locator(".empty-state-text")).to_contain_text("Widen the time range")
    await expect(empty.locator("a.button")).to_have_text("Change filters")
    await expect(page.locator("#page-state")).to_be_hidden()
