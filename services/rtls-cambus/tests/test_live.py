"""Live: two app instances on one database and Redis. A change committed anywhere reaches the feed of the other
instance (it reads the service's event stream, not process memory), and the map page shows people move."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.browser import LiveServer, PageOpener
from mirante.testing.database import create_test_database, drop_test_database
from rtls_cambus.config import Settings
from rtls_cambus.devices.models import Device
from rtls_cambus.main import create_app
from rtls_cambus.positions.service import apply_readings

API = "/api/v1"
GUARD_SECONDS = 30
EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class Live:
    urls: tuple[str, str]
    engine: AsyncEngine
    site: Any
    viewer: str
    clock: datetime = EPOCH

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.viewer}"}

    async def readings(self, gateway: Device, rssi: int, at: datetime | None = None) -> None:
        async with create_sessionmaker(self.engine)() as session, session.begin():
            await apply_readings(session, gateway, [(self.site.tag.mac, rssi)], at or datetime.now(UTC))

    async def walk_to(self, here: Device, there: Device) -> None:
        """Readings a second apart that put the tag at `there` for longer than the dwell time, `here` fading;
        they go on from the last walk's time, since a gateway's readings older than its last one are ignored."""
        self.clock = max(self.clock, datetime.now(UTC) - timedelta(seconds=8))
        for _ in range(9):
            self.clock += timedelta(seconds=1)
            await self.readings(here, -88, self.clock)
            await self.readings(there, -48, self.clock)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(
    mirante_urls: StackUrls, migrated_template: str, infra_settings: InfraSettings, make_site: Any
) -> AsyncIterator[Live]:
    database_url = await create_test_database(
        mirante_urls.database_url, prefix="rtls_live_test", template=migrated_template
    )
    engine = create_engine(database_url)
    try:
        infra = infra_settings.model_copy(
            update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)}
        )
        async with create_sessionmaker(engine)() as session, session.begin():
            site = await make_site(session)
            user = await create_user(
                session, username=f"viewer-{uuid.uuid4().hex[:8]}", password="live-pass-1234", role="viewer"
            )
            token = TokenCodec.from_settings(infra.jwt).issue(user.id, username=user.username, role=user.role).token
        # Readings are applied directly here (the MQTT ingest has tests of its own): two replicas subscribing under
        # the default client id would keep taking the one session from each other.
        settings = Settings(infra=infra, mqtt_ingest_enabled=False)
        async with LiveServer(create_app(settings)) as a, LiveServer(create_app(settings)) as b:
            yield Live((a.url, b.url), engine, site, token)
    finally:
        await engine.dispose()
        await drop_test_database(mirante_urls.database_url, database_url)


async def next_position(lines: AsyncIterator[str], tag_id: int) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data: "):
            event = json.loads(line[len("data: ") :])
            if event["type"] == "rtls.position.changed" and event["data"]["tag_id"] == tag_id:
                return event
    raise AssertionError("the feed ended")


async def test_a_change_committed_anywhere_reaches_the_feed_of_the_other_instance(live: Live) -> None:
    first, second = live.urls
    async with httpx.AsyncClient(timeout=GUARD_SECONDS) as client:
        ticket = await client.post(f"{first}{API}/positions/feed-tickets", headers=live.headers())
        assert ticket.status_code == 201, ticket.text
        async with client.stream("GET", f"{second}{ticket.json()['url']}") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            await live.readings(live.site.gateways[0], -50)
            event = await asyncio.wait_for(next_position(lines, live.site.tag.id), GUARD_SECONDS)
        assert event["data"]["zone_id"] == live.site.zones[0].id and event["data"]["status"] == "present"
        spent = await client.get(f"{second}{ticket.json()['url']}")
        assert spent.status_code == 401 and spent.json()["error"]["code"] == "invalid_feed_ticket"


@pytest.mark.browser
async def test_the_map_shows_a_person_walking_into_the_restricted_lab(live: Live, open_page: PageOpener) -> None:
    expect = pytest.importorskip("playwright.async_api", reason="needs the playwright package").expect
    lobby, lab, _ = live.site.gateways
    await live.walk_to(lab, lobby)
    page = await open_page(live.urls[1], token=live.viewer, locale="en-US")
    await page.goto(f"/?building={live.site.building.id}&floor={live.site.floor.id}")
    dot = page.locator(f'circle.person[data-tag-id="{live.site.tag.id}"]')
    await expect(dot).to_have_attribute("data-zone-id", str(live.site.zones[0].id), timeout=15_000)
    await expect(page.locator("#map-view")).to_have_attribute("data-live", "true", timeout=15_000)
    await expect(page.locator("rect.gateway")).to_have_count(3)
    await expect(page.locator("#people-body tr").first).to_contain_text("Lobby")

    await live.walk_to(lobby, lab)
    await expect(dot).to_have_attribute("data-zone-id", str(live.site.zones[1].id), timeout=15_000)
    await expect(dot).to_have_class("person in-restricted")
    await expect(page.locator("#people-body tr").first).to_contain_text("Lab")

    await page.locator("#trail-form button[type=submit]").click()
    await expect(page.locator("#trail-list li")).not_to_have_count(0)
    await expect(page.locator("polyline.trail")).to_have_count(1)
