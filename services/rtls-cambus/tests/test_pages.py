"""The dashboard, the incident board, an incident's page and the webhook page in headless Chromium, against a real
server on a database of their own (the map has its own test, in test_live).

The site, incidents, a webhook subscription and its failed delivery are written straight to the database; the
pages then change them through the API as a user would (a status, a message, an upload, a redelivery).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.browser import LiveServer, PageOpener
from mirante.testing.database import create_test_database, drop_test_database
from rtls_cambus.config import Settings
from rtls_cambus.incidents.models import Incident, IncidentStatusChange, SupportGroup
from rtls_cambus.main import create_app
from rtls_cambus.outgoing.models import FAILED, WebhookAttempt, WebhookDelivery, WebhookSubscription
from rtls_cambus.positions.models import TagPosition

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package")
expect = playwright_api.expect

WAIT_MS = 15_000


@dataclass
class PagesSite:
    url: str
    engine: Any
    site: Any
    tokens: dict[str, str] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    group: int = 0
    subscription: int = 0
    delivery: int = 0

    async def incident(self, title: str, severity: str = "high", status: str = "open") -> int:
        """A new incident, written straight to the database (with the opening in its history)."""
        async with create_sessionmaker(self.engine)() as session, session.begin():
            incident = Incident(title=title, severity=severity, status=status)
            session.add(incident)
            await session.flush()
            session.add(
                IncidentStatusChange(
                    incident_id=incident.id, to_status="open", changed_by_kind="user", changed_by_name="seed"
                )
            )
            return incident.id


async def _seed(session: AsyncSession, made: PagesSite) -> None:
    site = made.site
    now = datetime.now(UTC)
    session.add(
        TagPosition(
            tag_id=site.tag.id,
            person_id=site.person.id,
            status="present",
            last_seen_at=now + timedelta(hours=1),  # stays fresh however slowly the test runs
            building_id=site.building.id,
            floor_id=site.floor.id,
            zone_id=site.zones[0].id,
        )
    )
    site.gateways[0].status = "online"
    site.gateways[1].status = "offline"
    group = SupportGroup(name="Facilities")
    session.add(group)
    await session.flush()
    made.group = group.id
    for key, severity, status in (
        ("fire", "critical", "open"),
        ("door", "high", "acknowledged"),
        ("leak", "low", "in_progress"),
        ("old", "medium", "closed"),
    ):
        incident = Incident(
            title=f"Incident {key}",
            severity=severity,
            status=status,
            support_group_id=group.id if key == "door" else None,
            building_id=site.building.id,
        )
        session.add(incident)
        await session.flush()
        made.incidents[key] = incident.id
    subscription = WebhookSubscription(
        url="https://receiver.example/hooks", event_types=["rtls.incident.created"], secret="whsec_c2VjcmV0"
    )
    session.add(subscription)
    await session.flush()
    delivery = WebhookDelivery(
        subscription_id=subscription.id,
        msg_id=f"msg_{uuid.uuid4().hex}",
        event_id=uuid.uuid4(),
        event_type="rtls.incident.created",
        payload=b"{}",
        status=FAILED,
        attempts=2,
        last_status_code=500,
    )
    session.add(delivery)
    await session.flush()
    session.add_all(
        [
            WebhookAttempt(delivery_id=delivery.id, attempted_at=now, duration_ms=12, status_code=503),
            WebhookAttempt(delivery_id=delivery.id, attempted_at=now, duration_ms=15, status_code=500),
        ]
    )
    made.subscription, made.delivery = subscription.id, delivery.id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pages_site(
    mirante_urls: StackUrls, infra_settings: InfraSettings, make_site: Any
) -> AsyncIterator[PagesSite]:
    database_url = await create_test_database(mirante_urls.database_url, prefix="rtls_pages_test")
    engine = create_engine(database_url)
    try:
        infra = infra_settings.model_copy(
            update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)}
        )
        codec = TokenCodec.from_settings(infra.jwt)
        async with create_sessionmaker(engine)() as session, session.begin():
            made = PagesSite(url="", engine=engine, site=await make_site(session))
            for role in ("viewer", "operator", "admin"):
                user = await create_user(
                    session, username=f"{role}-{uuid.uuid4().hex[:8]}", password="pages-pass-1234", role=role
                )
                made.tokens[role] = codec.issue(user.id, username=user.username, role=user.role).token
            await _seed(session, made)
        settings = Settings(
            infra=infra, mqtt_ingest_enabled=False, webhook_dispatch_enabled=False, incident_rules_enabled=False
        )
        async with LiveServer(create_app(settings)) as server:
            made.url = server.url
            yield made
    finally:
        await engine.dispose()
        await drop_test_database(mirante_urls.database_url, database_url)


def column(page: Any, status: str) -> Any:
    return page.locator(f'.board-column[data-status="{status}"]')


async def test_the_dashboard_shows_the_site_now(pages_site: PagesSite, open_page: PageOpener) -> None:
    page = await open_page(pages_site.url, token=pages_site.tokens["viewer"], locale="en-US")
    await page.goto("/dashboard")

    await expect(page.locator('[data-card="people"] .card-value')).to_have_text("1", timeout=WAIT_MS)
    await expect(page.locator('[data-card="gateways"] .card-value')).to_have_text("1 / 3 online")
    await expect(page.locator('[data-card="gateways"] .card-sub')).to_have_text("1 offline · 1 never heard")
    await expect(page.locator('[data-card="severity-critical"] .card-value')).to_have_text("1")
    await expect(page.locator('[data-card="severity-medium"] .card-value')).to_have_text("0"), "closed: not open"
    building_row = page.locator(f'tr.building-row[data-building-id="{pages_site.site.building.id}"]')
    await expect(building_row).to_contain_text(pages_site.site.building.name)
    await expect(building_row.locator("td.num")).to_have_text("1")
    await expect(page.locator(f'tr.floor-row[data-floor-id="{pages_site.site.floor.id}"]')).to_contain_text("Level 0")
    await expect(page.locator('nav a[data-nav="dashboard"]')).to_have_attribute("aria-current", "page")
    await expect(page.locator('nav a[data-nav="webhooks"]')).to_be_hidden()

    await page.locator('[data-card="severity-critical"]').click()
    await page.wait_for_url("**/incidents?severity=critical")
    await expect(column(page, "open").locator(".incident-card")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#f-severity")).to_have_value("critical")


async def test_the_board_shows_a_column_per_status_and_filters(pages_site: PagesSite, open_page: PageOpener) -> None:
    page = await open_page(pages_site.url, token=pages_site.tokens["viewer"], locale="en-US")
    await page.goto("/incidents")

    door = column(page, "acknowledged").locator(f'.incident-card[data-incident-id="{pages_site.incidents["door"]}"]')
    await expect(door).to_contain_text("Incident door", timeout=WAIT_MS)
    await expect(door.locator(".badge.severity")).to_have_text("high")
    await expect(column(page, "closed").locator(".incident-card")).to_contain_text(["Incident old"])
    await expect(page.locator(".incident-card button")).to_have_count(0), "viewers only read"
    await expect(page.locator("#new-incident-panel")).to_be_hidden()

    await page.select_option("#f-group", str(pages_site.group))
    await expect(page.locator(".incident-card")).to_have_count(1)
    assert f"support_group_id={pages_site.group}" in page.url
    await page.select_option("#f-group", "")
    await page.fill("#f-q", "lea")
    await expect(page.locator(".incident-card")).to_have_count(1)
    await expect(column(page, "in_progress").locator(".incident-card")).to_contain_text("Incident leak")

    await page.goto(f"/incidents/{pages_site.incidents['door']}")
    await expect(page.locator("#incident-title")).to_have_text("Incident door", timeout=WAIT_MS)
    await expect(page.locator('[data-field="support-group"]')).to_have_text("Facilities")
    await expect(page.locator('[data-field="where"]')).to_have_text(pages_site.site.building.name)
    await expect(page.locator("#status-panel")).to_be_hidden()
    await expect(page.locator("#message-form")).to_be_hidden()
    await expect(page.locator("#upload-form")).to_be_hidden()


async def test_operators_move_cards_and_open_incidents_on_the_board(
    pages_site: PagesSite, open_page: PageOpener
) -> None:
    fresh = await pages_site.incident(f"Smoke {uuid.uuid4().hex[:6]}", severity="medium")
    page = await open_page(pages_site.url, token=pages_site.tokens["operator"], locale="en-US")
    await page.goto("/incidents?severity=medium")

    card = page.locator(f'.incident-card[data-incident-id="{fresh}"]')
    await expect(column(page, "open").locator(f'[data-incident-id="{fresh}"]')).to_be_visible(timeout=WAIT_MS)
    await card.locator('button[data-action="acknowledged"]').click()
    await expect(column(page, "acknowledged").locator(f'[data-incident-id="{fresh}"]')).to_be_visible()
    await card.locator('button[data-action="in_progress"]').click()
    await expect(column(page, "in_progress").locator(f'[data-incident-id="{fresh}"]')).to_be_visible()

    title = f"Broken badge reader {uuid.uuid4().hex[:6]}"
    await page.locator("#new-incident-panel summary").click()
    await page.fill("#new-title", title)
    await page.select_option("#new-severity", "medium")
    await page.click("#new-submit")
    await expect(column(page, "open").locator(".incident-card").filter(has_text=title)).to_be_visible()


async def test_an_incidents_page_moves_it_along_holds_its_thread_and_attachments(
    pages_site: PagesSite, open_page: PageOpener, tmp_path: Path
) -> None:
    incident = await pages_site.incident(f"Water on floor {uuid.uuid4().hex[:6]}", severity="critical")
    page = await open_page(pages_site.url, token=pages_site.tokens["operator"], locale="en-US")
    await page.goto(f"/incidents/{incident}")

    await expect(page.locator("#incident-badges .badge.status")).to_have_text("Open", timeout=WAIT_MS)
    await expect(page.locator('nav a[data-nav="incidents"]')).to_have_attribute("aria-current", "page")
    await page.fill("#status-note", "on my way")
    await page.locator('#status-buttons button[data-target="acknowledged"]').click()
    await expect(page.locator("#incident-badges .badge.status")).to_have_text("Acknowledged")
    await expect(page.locator('#history li[data-to="acknowledged"]')).to_contain_text("on my way")
    await expect(page.locator('#status-buttons button[data-target="in_progress"]')).to_have_text("Start work")

    await page.fill("#message-body", "Mop <b>and</b> bucket needed")
    await page.click("#message-submit")
    await expect(page.locator("#thread li .body")).to_have_text(["Mop <b>and</b> bucket needed"])
    await expect(page.locator("#thread-count")).to_have_text("(1)")

    note = tmp_path / "report.txt"
    note.write_text("the pipe above the lab leaks\n", encoding="utf-8")
    await page.set_input_files("#upload-file", str(note))
    await page.click("#upload-submit")
    row = page.locator("#attachments-body tr[data-attachment-id]")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("report.txt")
    await expect(row).to_contain_text("text/plain")

    strange = tmp_path / "tool.exe"
    strange.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(range(256)))
    await page.set_input_files("#upload-file", str(strange))
    await page.click("#upload-submit")
    await expect(page.locator("#attachment-error")).to_be_visible()
    await expect(row).to_have_count(1)

    viewer = await open_page(pages_site.url, token=pages_site.tokens["viewer"], locale="en-US")
    await viewer.goto(f"/incidents/{incident}")
    await expect(viewer.locator("#thread li .body")).to_have_count(1, timeout=WAIT_MS)
    async with viewer.expect_download() as download_info:
        await viewer.locator('#attachments-body button[data-action="open"]').click()
    download: Any = await download_info.value
    assert download.suggested_filename == "report.txt"
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    assert text == "the pipe above the lab leaks\n"


async def test_an_unknown_incident_says_so(pages_site: PagesSite, open_page: PageOpener) -> None:
    page = await open_page(pages_site.url, token=pages_site.tokens["viewer"], locale="en-US")
    await page.goto(f"/incidents/{2**62}")
    await expect(page.locator("#page-state .page-state-title")).to_have_text("Not found", timeout=WAIT_MS)
    await expect(page.locator("#incident-view")).to_be_hidden()


async def test_admins_read_the_delivery_log_and_deliver_again(pages_site: PagesSite, open_page: PageOpener) -> None:
    page = await open_page(pages_site.url, token=pages_site.tokens["admin"], locale="en-US")
    await page.goto("/webhooks")

    subscription = page.locator(f'#subscriptions-body tr[data-subscription-id="{pages_site.subscription}"]')
    await expect(subscription).to_contain_text("https://receiver.example/hooks", timeout=WAIT_MS)
    await expect(subscription).to_contain_text("enabled")
    await expect(page.locator("#page-summary")).to_have_text("1\N{EN DASH}1 of 1 subscription")
    await expect(page.locator('nav a[data-nav="webhooks"]')).to_be_visible()
    await subscription.locator('button[data-action="deliveries"]').click()
    assert f"subscription={pages_site.subscription}" in page.url

    delivery = page.locator(f'#deliveries-body tr[data-delivery-id="{pages_site.delivery}"]')
    await expect(delivery).to_have_attribute("data-status", "failed")
    await expect(delivery).to_contain_text("rtls.incident.created")
    await expect(delivery.locator("td.answer")).to_have_text("HTTP 500")
    await expect(delivery.locator(".attempts li")).to_have_count(2)
    await delivery.locator('button[data-action="redeliver"]').click()
    await expect(delivery).to_have_attribute("data-status", "pending")

    await page.select_option("#delivery-status", "failed")
    await expect(page.locator("#deliveries-body tr.empty-row")).to_contain_text("No deliveries")
    await page.reload()
    await expect(page.locator("#delivery-status")).to_have_value("failed", timeout=WAIT_MS)
    await expect(page.locator("#deliveries-panel")).to_be_visible()


async def test_the_webhook_page_tells_others_it_is_for_admins(pages_site: PagesSite, open_page: PageOpener) -> None:
    page = await open_page(pages_site.url, token=pages_site.tokens["operator"], locale="en-US")
    await page.goto("/webhooks")
    await expect(page.locator("#page-state .page-state-title")).to_have_text(
        "Not open to your account", timeout=WAIT_MS
    )
    await expect(page.locator("#page-state")).to_contain_text("admins not bound to a tenant")
    await expect(page.locator("#webhooks-view")).to_be_hidden()
