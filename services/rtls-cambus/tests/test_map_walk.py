"""The map page driven by the gateway simulator: a person walks from room to room, the simulator publishes what
the gateways hear over the real broker, the service (under uvicorn, its MQTT ingest on) moves the tag, and the
page, fed by its live feed, shows the person in the right zone, then in the next one."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.devstack import StackUrls
from mirante.testing.browser import LiveServer, PageOpener
from mirante.testing.mqtt import MqttSessions, wait_for_scalar
from mirante.testing.streams import wait_until
from rtls_cambus.config import Settings
from rtls_cambus.main import create_app

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.gateways import Building, PublishResult  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mqtt5_broker")]
STAY_TICKS = 8
TICK_SECONDS = 0.25
DWELL_SECONDS = 0.6


@pytest.mark.browser
async def test_the_map_shows_a_simulated_person_in_each_room_of_the_walk(
    mqtt_sessions: MqttSessions,
    mirante_urls: StackUrls,
    db_engine: AsyncEngine,
    place_building: Any,
    open_page: PageOpener,
) -> None:
    expect = pytest.importorskip("playwright.async_api", reason="needs the playwright package").expect
    # Everyone starts in room 0, whose gateway the simulator publishes first (see the walking test of the ingest).
    building = Building(rooms=3, people=1, dwell=STAY_TICKS, seed=uuid.uuid4().int % 10**6, start_room=0)
    tag = building.tags[0]
    async with AsyncSession(db_engine, expire_on_commit=False) as session:
        placed = await place_building(session, building)
        viewer = await create_user(
            session, username=f"map-{uuid.uuid4().hex[:8]}", password="map-walk-pass-1234", role="viewer"
        )
        await session.commit()
    token = TokenCodec.from_settings(mqtt_sessions.infra.jwt).issue(viewer.id, username=viewer.username, role="viewer")
    app = create_app(
        Settings(
            infra=mqtt_sessions.infra,
            mqtt_client_id=mqtt_sessions.new("rtls-cambus-map-test"),
            ingest_batch_interval_seconds=0.05,
            position_dwell_seconds=DWELL_SECONDS,
            webhook_dispatch_enabled=False,
            incident_rules_enabled=False,
        )
    )
    stored = "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = ANY(:g)"
    published = 0

    async def tick_stored(tick: int, sent: PublishResult) -> None:
        await wait_for_scalar(db_engine, stored, published + sent.readings, g=building.gateways)

    async def stay(number: int) -> int:
        """Publish the walk's `number`-th stay (ticks at a quarter of a second, each stored before the next); the
        room it was in."""
        nonlocal published
        sent = await building.publish(
            mirante_urls.mqtt_url,
            ticks=STAY_TICKS,
            first_tick=number * STAY_TICKS,
            interval=TICK_SECONDS,
            after_tick=tick_stored,
        )
        published += sent.readings
        [room] = sent.visits(tag)
        return room

    async with LiveServer(app) as server:

        def subscribed() -> bool:
            runner = getattr(app.state, "mqtt_ingest_runner", None)
            return runner is not None and runner.connected.is_set()

        await wait_until(subscribed, within=15, what="the service's MQTT subscriber")
        page = await open_page(server.url, token=token.token, locale="en-US")
        await page.goto(f"/?building={placed.building_id}&floor={placed.floor_id}")
        await expect(page.locator("#map-view")).to_have_attribute("data-live", "true", timeout=15_000)
        await expect(page.locator("rect.gateway")).to_have_count(3)
        dot = page.locator(f'circle.person[data-tag-id="{placed.tags[tag]}"]')

        first = await stay(0)
        assert first == 0
        await expect(dot).to_have_attribute("data-zone-id", str(placed.zones[first]), timeout=15_000)
        await expect(page.locator("#people-body tr").first).to_contain_text(f"Room {first + 1}")

        second = await stay(1)
        assert second == 1, "from the first room of a row, the only way is to the next"
        await expect(dot).to_have_attribute("data-zone-id", str(placed.zones[second]), timeout=15_000)
        await expect(page.locator("#people-body tr").first).to_contain_text(f"Room {second + 1}")
        # Closed before the server stops, whose going away the page would report as a problem.
        await page.context.close()
