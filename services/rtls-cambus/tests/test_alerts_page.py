"""The alerts inbox in headless Chromium, against a real server: operators acknowledge and resolve open alerts,
viewers only read, and a change someone else made meanwhile is explained."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.browser import LiveServer, PageOpener
from mirante.testing.database import create_test_database, drop_test_database
from rtls_cambus.alerts.models import AlertEvent
from rtls_cambus.config import Settings
from rtls_cambus.main import create_app

pytestmark = pytest.mark.browser


@dataclass
class Inbox:
    url: str
    engine: AsyncEngine
    tokens: dict[str, str]

    async def alert(self, message: str, severity: str = "high") -> int:
        async with create_sessionmaker(self.engine)() as session, session.begin():
            alert = AlertEvent(
                rule_name="Lab after hours",
                kind="zone_entry",
                severity=severity,
                status="open",
                message=message,
                dedup_key=uuid.uuid4().hex,
                cooldown_key="person:1",
            )
            session.add(alert)
            await session.flush()
            return alert.id

    async def read(self, alert_id: int) -> AlertEvent:
        async with create_sessionmaker(self.engine)() as session:
            return (await session.execute(select(AlertEvent).where(AlertEvent.id == alert_id))).scalar_one()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def inbox(mirante_urls: StackUrls, infra_settings: InfraSettings) -> AsyncIterator[Inbox]:
    database_url = await create_test_database(mirante_urls.database_url, prefix="rtls_alerts_page_test")
    engine = create_engine(database_url)
    try:
        infra = infra_settings.model_copy(
            update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)}
        )
        codec = TokenCodec.from_settings(infra.jwt)
        tokens = {}
        async with create_sessionmaker(engine)() as session, session.begin():
            for role in ("operator", "viewer"):
                user = await create_user(
                    session, username=f"{role}-{uuid.uuid4().hex[:8]}", password="page-pass-1234", role=role
                )
                tokens[role] = codec.issue(user.id, username=user.username, role=user.role).token
        quiet = Settings(
            infra=infra,
            mqtt_ingest_enabled=False,
            webhook_dispatch_enabled=False,
            incident_rules_enabled=False,
            alert_engine_enabled=False,
        )
        async with LiveServer(create_app(quiet)) as server:
            yield Inbox(server.url, engine, tokens)
    finally:
        await engine.dispose()
        await drop_test_database(mirante_urls.database_url, database_url)


def _expect() -> Any:
    return pytest.importorskip("playwright.async_api", reason="needs the playwright package").expect


async def test_an_operator_acknowledges_then_resolves_an_alert(inbox: Inbox, open_page: PageOpener) -> None:
    expect = _expect()
    first = await inbox.alert("Ana Souza entered zone Lab", "critical")
    second = await inbox.alert("Gateway AA:BB:CC:DD:EE:01 is offline", "medium")
    page = await open_page(inbox.url, token=inbox.tokens["operator"], locale="en-US")
    await page.goto("/alerts")
    row = page.locator(f'tr[data-alert-id="{first}"]')
    await expect(row).to_contain_text("Ana Souza entered zone Lab")
    await expect(row.locator(".severity")).to_have_text("critical")
    await expect(page.locator(f'tr[data-alert-id="{second}"]')).to_be_visible()

    await row.locator('button[data-action="acknowledge"]').click()
    await expect(row).to_have_attribute("data-status", "acknowledged")
    await expect(row.locator('button[data-action="acknowledge"]')).to_have_count(0)
    await expect(row.locator(".alert-who")).to_contain_text("Acknowledged by operator-")

    await row.locator('button[data-action="resolve"]').click()
    await expect(row).to_have_count(0)
    await expect(page.locator(f'tr[data-alert-id="{second}"]')).to_be_visible()
    stored = await inbox.read(first)
    assert stored.status == "resolved" and stored.resolved_by_name and stored.resolved_by_name.startswith("operator-")

    await page.select_option("#status", "resolved")
    await expect(page.locator(f'tr[data-alert-id="{first}"]')).to_have_attribute("data-status", "resolved")
    assert "status=resolved" in page.url


async def test_a_viewer_reads_the_inbox_without_actions(inbox: Inbox, open_page: PageOpener) -> None:
    expect = _expect()
    alert = await inbox.alert("Camera Dock: person detected by intrusion", "low")
    page = await open_page(inbox.url, token=inbox.tokens["viewer"], locale="en-US")
    await page.goto("/alerts?severity=low")
    row = page.locator(f'tr[data-alert-id="{alert}"]')
    await expect(row).to_contain_text("Camera Dock")
    await expect(row.locator("button")).to_have_count(0)
    await expect(page.locator('tr[data-severity="critical"]')).to_have_count(0)


async def test_a_change_made_meanwhile_is_explained(inbox: Inbox, open_page: PageOpener) -> None:
    expect = _expect()
    alert = await inbox.alert("Bruno Lima has not been seen for 2 h")
    page = await open_page(inbox.url, token=inbox.tokens["operator"], locale="en-US")
    await page.goto("/alerts")
    row = page.locator(f'tr[data-alert-id="{alert}"]')
    await expect(row.locator('button[data-action="acknowledge"]')).to_be_visible()
    async with httpx.AsyncClient(base_url=inbox.url) as client:
        resolved = await client.post(
            f"/api/v1/alert-events/{alert}/resolve",
            headers={"Authorization": f"Bearer {inbox.tokens['operator']}"},
        )
        assert resolved.status_code == 200
    await row.locator('button[data-action="acknowledge"]').click()
    await expect(page.locator("#action-error")).to_contain_text(f"Alert {alert} changed meanwhile")
    await expect(row).to_have_count(0)
