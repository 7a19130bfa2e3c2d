"""The vision pages in headless Chromium against a real server on its own database.

The server runs under uvicorn on a free 127.0.0.1 port; machines and inspections are created through its API,
moved through the status flow with `inspections.service.transition` and changed straight in the database when a
test needs a machine to change under an open page. The queue endpoint (`GET /api/v1/orchestrator/queue/`) is
answered by the browser's routing in the tests of the queue's two states, so they hold whether or not the server
offers it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, update

from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.browser import LiveServer, PageOpener
from mirante.testing.database import create_test_database, drop_test_database
from vision_orchestrator.config import Settings
from vision_orchestrator.inspections import repository, service
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.main import create_app
from vision_orchestrator.tables import InspectionResult, Machine

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package")
expect = playwright_api.expect

PASSWORD = "vision-pages-pass-1234"
WAIT_MS = 15_000
DENIED = "The vision pages are for operators: viewers read the same figures through the API."
DIAMOND = {
    "tools": [
        {"name": "image_source", "parameters": {"source_type": "file", "file_path": "/img/a.jpg"}},
        {"name": "edges", "type": "edge_detection"},
        {"name": "blobs", "type": "blob_detection", "parameters": {"min_area": 100}},
        {"name": "color_filter"},
        {"name": "report", "type": "blob_detection"},
    ],
    "connections": [
        {"from": "image_source", "to": "edges"},
        {"from": "image_source", "to": "blobs"},
        {"from": "edges", "to": "report"},
        {"from": "blobs", "to": "report"},
        {"from": "image_source", "to": "color_filter"},
    ],
}


@dataclass
class Site:
    url: str
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)
    inspections: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def add_users(site: Site, infra: InfraSettings) -> None:
    engine = create_engine(site.database_url)
    codec = TokenCodec.from_settings(infra.jwt)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for role in ("viewer", "operator", "admin"):
                user = await create_user(
                    session, username=f"{role}-{uuid.uuid4().hex[:8]}", password=PASSWORD, role=role
                )
                site.tokens[role] = codec.issue(user.id, username=user.username, role=user.role).token
    finally:
        await engine.dispose()


async def seed(site: Site) -> None:
    """Three machines and five inspections through the API; three of them moved along the flow."""
    async with httpx.AsyncClient(base_url=site.url, timeout=10) as client:
        for key, name, capacity in (("a", "MV-Line-A", 3), ("b", "MV-Line-B", 2), ("c", "MV-Line-C", 1)):
            body = {
                "name": name,
                "location": "Linha de Produção A",
                "ip_address": "192.168.1.100",
                "port": 5000,
                "max_concurrent_inspections": capacity,
                "supported_inspection_types": ["blob_detection", "edge_detection", "color_filter"],
            }
            response = await client.post("/api/v1/machines/", json=body, headers=site.headers("admin"))
            assert response.status_code == 201, response.text
            site.machines[key] = response.json()["id"]
        for key, priority in (("low", 8), ("urgent", 1), ("normal", 5), ("done", 5), ("failed", 5)):
            body = {"name": f"Inspeção {key}", "inspection_type": "blob_detection", "pipeline_config": DIAMOND}
            body["priority"] = priority
            response = await client.post("/api/v1/inspections/", json=body, headers=site.headers("operator"))
            assert response.status_code == 201, response.text
            site.inspections[key] = response.json()["id"]
    engine = create_engine(site.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            flows = {
                "done": (InspectionStatus.assigned, InspectionStatus.processing, InspectionStatus.completed),
                "failed": (InspectionStatus.assigned, InspectionStatus.failed),
            }
            for key, targets in flows.items():
                for target in targets:
                    row = await repository.get_inspection(session, site.inspections[key], for_update=True)
                    assert row is not None
                    await service.transition(session, row, target, actor="system", machine_id=site.machines["a"])
            session.add(
                InspectionResult(
                    inspection_id=site.inspections["done"],
                    machine_id=site.machines["a"],
                    idempotency_key="attempt-1",
                    status="completed",
                    results={"blob_count": 5, "confidence_score": 0.95},
                    processing_time_seconds=2.3,
                )
            )
    finally:
        await engine.dispose()


async def change_machine(site: Site, key: str, **values: Any) -> None:
    engine = create_engine(site.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await session.execute(update(Machine).where(Machine.id == site.machines[key]).values(**values))
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(mirante_urls: StackUrls, migrated_template: str, infra_settings: InfraSettings) -> AsyncIterator[Site]:
    database_url = await create_test_database(
        mirante_urls.database_url, prefix="vision_pages_test", template=migrated_template
    )
    try:
        infra = infra_settings.model_copy(
            update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)}
        )
        async with LiveServer(create_app(Settings(infra=infra))) as server:
            seeded = Site(url=server.url, database_url=database_url)
            await add_users(seeded, infra_settings)
            await seed(seeded)
            yield seeded
    finally:
        await drop_test_database(mirante_urls.database_url, database_url)


SitePage = Callable[..., Awaitable[Any]]


@pytest.fixture
def site_page(open_page: PageOpener) -> SitePage:
    async def make(site: Site, role: str) -> Any:
        return await open_page(site.url, token=site.tokens[role], locale="en-US")

    return make


async def api(site: Site, path: str) -> Any:
    async with httpx.AsyncClient(base_url=site.url, timeout=10) as client:
        response = await client.get(path, headers=site.headers("admin"))
        assert response.status_code == 200, response.text
        return response.json()


# -- every page ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/machines", "/queue", "/inspections/ins_0123456789ab"])
async def test_pages_carry_a_strict_csp_and_no_inline_code(site: Site, path: str) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        page = await client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "style=" not in page.text


@pytest.mark.parametrize(
    ("path", "view"),
    [("/", "#dashboard-view"), ("/machines", "#board-view"), ("/queue", "#queue-view"), (None, "#inspection-view")],
)
async def test_viewers_are_told_the_pages_are_for_operators(
    site: Site, site_page: SitePage, path: str | None, view: str
) -> None:
    page = await site_page(site, "viewer")
    await page.goto(path or f"/inspections/{site.inspections['done']}")
    state = page.locator("#page-state")
    await expect(state.locator(".page-state-title")).to_have_text("Not open to your account")
    await expect(state.locator(".page-state-message")).to_have_text(DENIED)
    await expect(state.locator('[data-action="sign-in"]')).to_be_visible()
    await expect(page.locator(view)).to_be_hidden()


async def test_nav_links_lead_between_the_pages(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "operator")
    await page.goto("/")
    await page.locator(".topbar nav a", has_text="Machines").click()
    await expect(page.locator("#machines-body tr[data-machine-id]").first).to_be_visible()
    await page.locator(".topbar nav a", has_text="Queue").click()
    await page.locator(f'tr[data-inspection-id="{site.inspections["urgent"]}"] a').click()
    await expect(page.locator("#inspection-title")).to_have_text("Inspeção urgent")
    await page.locator(".topbar nav a", has_text="Dashboard").click()
    await expect(page.locator("#health")).not_to_be_empty()


# -- the dashboard -----------------------------------------------------------------------------------------------


async def test_the_dashboard_shows_the_totals_health_and_performance(site: Site, site_page: SitePage) -> None:
    figures = await api(site, "/api/v1/dashboard/")
    page = await site_page(site, "operator")
    await page.goto("/")

    await expect(page.locator("#health")).to_have_text(figures["system_health"])
    totals = page.locator("#totals")
    await expect(totals.locator('[data-card="machines"] .card-value')).to_have_text(str(figures["total_machines"]))
    await expect(totals.locator('[data-card="pending"] .card-value')).to_have_text(str(figures["pending_inspections"]))
    await expect(totals.locator('[data-card="completed"] .card-value')).to_have_text("1")
    await expect(totals.locator('[data-card="failed"] .card-value')).to_have_text("1")
    await expect(totals.locator('[data-card="total"] .card-value')).to_have_text("5")
    performance = page.locator("#performance")
    await expect(performance.locator('[data-card="average"] .card-value')).to_have_text("2 s")
    await expect(performance.locator('[data-card="success"] .card-value')).to_have_text("50 %")
    await expect(page.locator("#live-status")).to_contain_text("Live")
    # Every machine is offline and there is pending work: the reasons say so.
    await expect(page.locator("#health-reasons li").first).to_be_visible()


async def test_a_failed_load_shows_the_problem_and_retry_brings_the_dashboard_back(
    site: Site, site_page: SitePage
) -> None:
    page = await site_page(site, "operator")
    envelope = {"error": {"code": "internal_error", "message": "internal error", "details": None}}

    async def broken(route: Any) -> None:
        await route.fulfill(status=500, content_type="application/json", body=json.dumps(envelope))

    await page.route(re.compile(r"/api/v1/dashboard/$"), broken)
    await page.goto("/")
    state = page.locator("#page-state")
    await expect(state.locator(".page-state-title")).to_have_text("The service failed")
    await expect(page.locator("#dashboard-view")).to_be_hidden()
    await page.unroute(re.compile(r"/api/v1/dashboard/$"))
    await state.locator('[data-action="retry"]').click()
    await expect(page.locator("#dashboard-view")).to_be_visible()
    await expect(page.locator("#health")).not_to_be_empty()


# -- the machine board ---------------------------------------------------------------------------------------------


async def test_the_board_shows_each_machine_and_follows_a_change_live(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "operator")
    await page.goto("/machines")
    row = page.locator(f'tr[data-machine-id="{site.machines["b"]}"]')
    await expect(page.locator("#machines-body tr[data-machine-id]")).to_have_count(3)
    await expect(row.locator(".status")).to_have_text("offline")
    await expect(row.locator("td.load")).to_have_text("0/2")
    await expect(row.locator(".heartbeat")).to_have_text("never")
    await expect(row.locator(".maintenance button")).to_have_count(0)

    await change_machine(site, "b", status="busy", current_inspections=2, last_heartbeat=func.now())

    await expect(row.locator(".status")).to_have_text("busy", timeout=WAIT_MS)
    await expect(row.locator("td.load")).to_have_text("2/2")
    await expect(row.locator(".heartbeat")).to_have_text(re.compile(r"just now|\d+ s ago"))
    await change_machine(site, "b", status="offline", current_inspections=0, last_heartbeat=None)
    await expect(row.locator(".status")).to_have_text("offline", timeout=WAIT_MS)


async def test_the_board_filters_by_status_and_keeps_them_in_the_url(site: Site, site_page: SitePage) -> None:
    # A fresh heartbeat, or the server's presence check turns the machine offline again within seconds.
    await change_machine(site, "c", status="online", last_heartbeat=func.now())
    try:
        page = await site_page(site, "operator")
        await page.goto("/machines")
        await page.select_option("#f-status", "online")
        await expect(page.locator("#machines-body tr[data-machine-id]")).to_have_count(1)
        await expect(page).to_have_url(re.compile(r"status=online"))
        await page.select_option("#f-maintenance", "true")
        await expect(page.locator("#machines-body .empty-state-title")).to_have_text("No machine matches these filters")
        await page.locator("#machines-body button", has_text="Reset filters").click()
        await expect(page.locator("#machines-body tr[data-machine-id]")).to_have_count(3)
    finally:
        await change_machine(site, "c", status="offline", last_heartbeat=None)


async def test_admins_toggle_maintenance_from_the_board(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "admin")
    await page.goto("/machines")
    toggle = page.locator(f'tr[data-machine-id="{site.machines["a"]}"] .maintenance-toggle')
    await expect(toggle).to_have_attribute("aria-pressed", "false")

    await toggle.click()

    await expect(toggle).to_have_attribute("aria-pressed", "true")
    assert (await api(site, f"/api/v1/machines/{site.machines['a']}/"))["maintenance"] is True
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    assert (await api(site, f"/api/v1/machines/{site.machines['a']}/"))["maintenance"] is False


# -- the queue ----------------------------------------------------------------------------------------------------

QUEUE_ROUTE = re.compile(r"/api/v1/orchestrator/queue/?$")


async def test_without_the_queue_endpoint_the_queue_lists_pending_work_and_hides_the_waits(
    site: Site, site_page: SitePage
) -> None:
    page = await site_page(site, "operator")
    envelope = {"error": {"code": "not_found", "message": "Not Found", "details": None}}

    async def absent(route: Any) -> None:
        await route.fulfill(status=404, content_type="application/json", body=json.dumps(envelope))

    await page.route(QUEUE_ROUTE, absent)
    await page.goto("/queue")

    ids = [site.inspections[key] for key in ("urgent", "normal", "low")]
    await expect(page.locator("#queue-body tr[data-inspection-id]")).to_have_count(3)
    assert await page.locator("#queue-body tr").evaluate_all("rows => rows.map(r => r.dataset.inspectionId)") == ids
    await expect(page.locator("#queue-body tr").first.locator(".priority")).to_have_text("1")
    await expect(page.locator("#wait-note")).to_contain_text("answered 404")
    await expect(page.locator("th.col-wait")).to_be_hidden()
    await expect(page.locator("#assignments-panel")).to_be_hidden()


async def test_with_the_queue_endpoint_the_queue_shows_estimated_waits_and_assignments(
    site: Site, site_page: SitePage
) -> None:
    page = await site_page(site, "operator")
    answer = {
        "pending_inspections": [
            {
                "id": site.inspections["urgent"],
                "priority": 1,
                "queued_at": "2025-08-13T20:05:00Z",
                "estimated_wait_time": 300,
            },
            {
                "id": site.inspections["normal"],
                "priority": 5,
                "queued_at": "2025-08-13T20:06:00Z",
                "estimated_wait_time": 45,
            },
        ],
        "machine_assignments": {site.machines["a"]: {"current_inspections": 1, "queue_position": 0}},
    }

    async def answered(route: Any) -> None:
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    await page.route(QUEUE_ROUTE, answered)
    await page.goto("/queue")

    await expect(page.locator("th.col-wait")).to_be_visible()
    await expect(page.locator(f'tr[data-inspection-id="{site.inspections["urgent"]}"] .wait')).to_have_text("5 min")
    await expect(page.locator(f'tr[data-inspection-id="{site.inspections["normal"]}"] .wait')).to_have_text("45 s")
    await expect(page.locator(f'tr[data-inspection-id="{site.inspections["low"]}"] .wait')).to_have_text("—")
    await expect(page.locator("#wait-note")).to_be_hidden()
    await expect(page.locator(f'#assignments-body tr[data-machine-id="{site.machines["a"]}"]')).to_be_visible()


# -- an inspection -------------------------------------------------------------------------------------------------


async def test_the_inspection_page_draws_the_pipeline_with_one_node_per_tool_and_one_edge_per_connection(
    site: Site, site_page: SitePage
) -> None:
    page = await site_page(site, "operator")
    await page.goto(f"/inspections/{site.inspections['done']}")

    graph = page.locator("#pipeline-graph")
    await expect(graph.locator("g.node")).to_have_count(len(DIAMOND["tools"]))
    await expect(graph.locator("path.edge")).to_have_count(len(DIAMOND["connections"]))
    levels = await graph.locator("g.node").evaluate_all(
        "nodes => Object.fromEntries(nodes.map(n => [n.dataset.tool, Number(n.dataset.level)]))"
    )
    assert levels == {"image_source": 0, "edges": 1, "blobs": 1, "color_filter": 1, "report": 2}
    edges = await graph.locator("path.edge").evaluate_all("paths => paths.map(p => [p.dataset.from, p.dataset.to])")
    assert sorted(map(tuple, edges)) == sorted((c["from"], c["to"]) for c in DIAMOND["connections"])
    await expect(page.locator("#pipeline-count")).to_have_text("· 5 tools, 5 connections")


async def test_the_inspection_page_shows_fields_history_and_results(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "operator")
    await page.goto(f"/inspections/{site.inspections['done']}")

    await expect(page.locator("#inspection-title")).to_have_text("Inspeção done")
    await expect(page.locator("#inspection-status")).to_have_text("completed")
    await expect(page.locator('#inspection-fields [data-field="Assigned machine"]')).to_have_text(site.machines["a"])
    history = page.locator("#history-body tr.history-row")
    await expect(history).to_have_count(4)
    await expect(history.nth(0).locator(".change")).to_have_text("created → pending")
    await expect(history.nth(3).locator(".change")).to_have_text("processing → completed")
    await expect(page.locator("#results .result")).to_have_count(1)
    await expect(page.locator("#results .result-json")).to_contain_text('"blob_count": 5')

    await page.goto(f"/inspections/{site.inspections['low']}")
    await expect(page.locator("#results .empty-state-title")).to_have_text("No results yet")

    await page.goto("/inspections/ins_0123456789ab")
    await expect(page.locator("#page-state .page-state-title")).to_have_text("Not found")
