"""The web pages in headless Chromium against a real server.

The app runs under uvicorn on a free 127.0.0.1 port with a database of its own (the browser's requests commit),
seeded with users, jobs and their history; webhook log entries come from real requests to the receiver. The
sync test gets its own database and server, pointed at the CVAT simulator, since a full sync rewrites the mirror.
The browser, pages and server come from the `mirante` plugin (`mirante.testing.browser`).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text

from cvat_sync.config import Settings
from cvat_sync.cvat.payloads import derive_status
from cvat_sync.jobs.models import Job, JobChange
from cvat_sync.main import SERVICE, create_app
from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.browser import LiveServer, PageOpener, sign_in
from mirante.testing.database import create_test_database, drop_test_database
from mirante.webhooks import sign_sha256_hex

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright package")
expect = playwright_api.expect

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cvat import DEFAULT_TOKEN, CvatSimulator  # noqa: E402

PASSWORD = "pages-pass-1234"
WEBHOOK_SECRET = "pages-webhook-secret"
CVAT_PUBLIC_URL = "https://cvat.example.test"
HOSTILE_NAME = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SeedJob:
    id: int
    task_id: int
    task_name: str
    project_id: int | None
    project_name: str | None
    assignee: str | None
    stage: str
    state: str
    hours_ago: int
    manual: int
    interpolated: int


SEED_JOBS = (
    SeedJob(101, 11, "Bridge inspection north", 1, "Harbor", "alice", "annotation", "new", 5, 10, 5),
    SeedJob(102, 12, "Bridge inspection south", 1, "Harbor", "carol", "validation", "in progress", 1, 20, 0),
    SeedJob(103, 13, "Street signs", 2, "City", "carol", "acceptance", "completed", 3, 7, 3),
    SeedJob(104, 14, "Street lights", 2, "City", "bob", "annotation", "in progress", 2, 0, 0),
    SeedJob(105, 15, "Parking lots", None, None, None, "annotation", "new", 7, 1, 1),
    SeedJob(106, 16, HOSTILE_NAME, 2, "City", "carol", "validation", "rejected", 6, 2, 0),
    SeedJob(107, 17, "Harbor cranes", 1, "Harbor", "alice", "acceptance", "completed", 4, 4, 4),
)
NEWEST_FIRST = [job.id for job in sorted(SEED_JOBS, key=lambda job: job.hours_ago)]


def job_row(job: SeedJob) -> Job:
    updated = NOW - timedelta(hours=job.hours_ago)
    raw = {
        "id": job.id,
        "task_id": job.task_id,
        "project_id": job.project_id,
        "stage": job.stage,
        "state": job.state,
        "type": "annotation",
        "frame_count": 50,
        "assignee": {"username": job.assignee} if job.assignee else None,
        "updated_date": updated.isoformat(),
    }
    return Job(
        id=job.id,
        task_id=job.task_id,
        task_name=job.task_name,
        project_id=job.project_id,
        project_name=job.project_name,
        assignee=job.assignee,
        status=derive_status(job.stage, job.state),
        stage=job.stage,
        state=job.state,
        job_type="annotation",
        frame_count=50,
        manual_annotations=job.manual,
        interpolated_annotations=job.interpolated,
        total_annotations=job.manual + job.interpolated,
        cvat_created_at=updated - timedelta(days=3),
        cvat_updated_at=updated,
        raw=raw,
    )


# -- a seeded server for the browser -----------------------------------------------------------------------


def app_settings(infra: InfraSettings, database_url: str, cvat_url: str = "http://127.0.0.1:9") -> Settings:
    return Settings(
        infra=infra.model_copy(update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)}),
        cvat_url=cvat_url,
        cvat_public_url=CVAT_PUBLIC_URL,
        cvat_token=SecretStr(DEFAULT_TOKEN),
        cvat_legacy_token=None,
        cvat_username=None,
        cvat_password=None,
        cvat_page_size=10,
        webhook_secret=SecretStr(WEBHOOK_SECRET),
    )


@dataclass
class Site:
    """A running server with its users (username by role) and a way to mint their tokens."""

    url: str
    database_url: str
    users: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)


async def add_users(database_url: str, infra: InfraSettings, roles: tuple[str, ...]) -> Site:
    engine = create_engine(database_url)
    codec = TokenCodec.from_settings(infra.jwt)
    site = Site(url="", database_url=database_url, users={})
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for role in roles:
                user = await create_user(
                    session, username=f"{role}-{uuid.uuid4().hex[:8]}", password=PASSWORD, role=role
                )
                site.users[role] = user.username
                site.tokens[role] = codec.issue(user.id, username=user.username, role=user.role).token
    finally:
        await engine.dispose()
    return site


async def seed_jobs(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add_all(job_row(job) for job in SEED_JOBS)
            await session.flush()
            session.add_all(
                [
                    JobChange(
                        job_id=102,
                        source="sync",
                        kind="created",
                        changes={},
                        status="annotation",
                        stage="annotation",
                        state="new",
                        assignee=None,
                        changed_at=NOW - timedelta(hours=30),
                    ),
                    JobChange(
                        job_id=102,
                        source="webhook",
                        kind="updated",
                        changes={"stage": ["annotation", "validation"], "assignee": [None, "carol"]},
                        status="validation",
                        stage="validation",
                        state="in progress",
                        assignee="carol",
                        changed_at=NOW - timedelta(hours=1),
                    ),
                ]
            )
    finally:
        await engine.dispose()


async def post_webhooks(url: str) -> None:
    """Three audit entries through the real receiver: a signed ping, an unsigned one, an unknown event."""
    ping = json.dumps({"event": "ping", "webhook_id": 7, "sender": {"username": "admin1"}}).encode()
    unknown = json.dumps({"event": "create:issue", "webhook_id": 7}).encode()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for body, signed, expected in ((ping, True, 200), (ping, False, 401), (unknown, True, 200)):
            headers = {"Content-Type": "application/json"}
            if signed:
                headers["X-Signature-256"] = sign_sha256_hex(WEBHOOK_SECRET, body)
            response = await client.post("/api/v1/webhooks/cvat", content=body, headers=headers)
            assert response.status_code == expected, response.text


async def forget_published_events(database_url: str, redis: Redis, since: str) -> None:
    """The app's outbox relay published this module's events to the service's real stream: remove them."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            ours = {str(event_id) for event_id in await connection.scalars(text("SELECT id FROM cvat_sync.outbox"))}
    finally:
        await engine.dispose()
    entries: Any = await redis.xrange(SERVICE.stream, min=since)
    stale = [entry_id for entry_id, fields in entries if fields.get(b"id", b"").decode() in ours]
    if stale:
        await redis.xdel(SERVICE.stream, *stale)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(mirante_urls: StackUrls, migrated_template: str, infra_settings: InfraSettings) -> AsyncIterator[Site]:
    """The seeded server most tests browse."""
    database_url = await create_test_database(
        mirante_urls.database_url, prefix="cvat_sync_pages_test", template=migrated_template
    )
    try:
        seeded = await add_users(database_url, infra_settings, ("viewer", "operator", "admin"))
        await seed_jobs(database_url)
        async with LiveServer(create_app(app_settings(infra_settings, database_url))) as server:
            seeded.url = server.url
            await post_webhooks(server.url)
            yield seeded
    finally:
        await drop_test_database(mirante_urls.database_url, database_url)


# -- the browser ---------------------------------------------------------------------------------------------


SitePage = Callable[..., Awaitable[Any]]


@pytest.fixture
def site_page(open_page: PageOpener) -> SitePage:
    """`await site_page(site, role)`: a page on `site` in a fresh browser profile, signed in as `role` (None: out)."""

    async def make(site: Site, role: str | None = None) -> Any:
        return await open_page(site.url, token=None if role is None else site.tokens[role])

    return make


async def row_ids(page: Any) -> list[int]:
    return [
        int(value)
        for value in await page.locator("#jobs-body tr[data-job-id]").evaluate_all(
            "rows => rows.map(row => row.dataset.jobId)"
        )
    ]


async def expect_rows(page: Any, ids: list[int]) -> None:
    rows = page.locator("#jobs-body tr[data-job-id]")
    await expect(rows).to_have_count(len(ids))
    assert await row_ids(page) == ids


def ids_where(predicate: Callable[[SeedJob], bool]) -> list[int]:
    return [job_id for job_id in NEWEST_FIRST if predicate(next(job for job in SEED_JOBS if job.id == job_id))]


# -- the tests -----------------------------------------------------------------------------------------------


async def test_pages_carry_a_strict_csp_and_assets_are_cached(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text and "style=" not in page.text, "no inline scripts or styles"
        asset = re.search(r'src="(/static/jobs\.js\?v=[0-9a-f]+)"', page.text)
        assert asset is not None
        versioned = await client.get(asset.group(1))
        assert versioned.status_code == 200 and "immutable" in versioned.headers["cache-control"]
        assert versioned.headers["content-type"].startswith("text/javascript")
        again = await client.get("/static/jobs.js", headers={"If-None-Match": versioned.headers["etag"]})
        assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
        assert (await client.get("/static/..%2Fconfig.py")).status_code == 404
        assert (await client.get("/static/nothing.js")).status_code == 404


async def test_signed_out_users_go_to_login_and_come_back_after_it(site: Site, site_page: SitePage) -> None:
    page = await site_page(site)

    await page.goto("/jobs/102")
    await expect(page).to_have_url(f"{site.url}/login?next=%2Fjobs%2F102")

    await page.fill("#username", site.users["viewer"])
    await page.fill("#password", "wrong-password")
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_have_text("Wrong username or password.")

    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page).to_have_url(f"{site.url}/jobs/102")
    await expect(page.locator("#job-title")).to_contain_text("Job #102")
    await expect(page.locator("#whoami")).to_have_text(f"{site.users['viewer']} · viewer")

    # Another origin in `next` is not followed.
    await sign_in(page, site.users["viewer"], PASSWORD, next_path="//elsewhere.example/")
    await expect(page).to_have_url(f"{site.url}/")
    await expect_rows(page, NEWEST_FIRST)


async def test_the_list_shows_jobs_newest_first_with_stat_cards(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/")

    await expect_rows(page, NEWEST_FIRST)
    await expect(page.locator('[data-stat="jobs"] .card-value')).to_have_text(str(len(SEED_JOBS)))
    await expect(page.locator('[data-stat="tasks"] .card-value')).to_have_text(str(len(SEED_JOBS)))
    await expect(page.locator('[data-stat="projects"] .card-value')).to_have_text("2")
    total = sum(job.manual + job.interpolated for job in SEED_JOBS)
    await expect(page.locator('[data-stat="annotations"] .card-value')).to_have_text(str(total))
    validation = len(ids_where(lambda job: derive_status(job.stage, job.state) == "validation"))
    await expect(page.locator('[data-stat="status-validation"] .card-value')).to_have_text(str(validation))
    await expect(page.locator("#page-summary")).to_have_text(f"1\N{EN DASH}{len(SEED_JOBS)} of {len(SEED_JOBS)} jobs")
    # Viewers cannot sync, and the audit log is for admins.
    await expect(page.locator("#sync-now")).to_be_hidden()
    await expect(page.locator("#nav-webhooks")).to_be_hidden()


async def test_search_and_a_clicked_assignee_narrow_the_list_and_the_url(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/")
    await expect_rows(page, NEWEST_FIRST)

    await page.fill("#f-q", "bridge")
    await expect(page).to_have_url(re.compile(r"[?&]q=bridge(&|$)"))
    await expect_rows(page, ids_where(lambda job: job.task_name.startswith("Bridge")))

    await page.fill("#f-q", "")
    await expect_rows(page, NEWEST_FIRST)
    await page.locator('#jobs-body tr[data-job-id="102"] td.assignee button').click()

    await expect(page).to_have_url(re.compile(r"[?&]assignee=carol(&|$)"))
    carol = ids_where(lambda job: job.assignee == "carol")
    await expect_rows(page, carol)
    await expect(page.locator('[data-stat="jobs"] .card-value')).to_have_text(str(len(carol)))
    await expect(page.locator('#filter-chips [data-filter="assignee"]')).to_contain_text("assignee: carol")

    await page.locator('#jobs-body tr[data-job-id="103"] td.status button').click()
    await expect(page).to_have_url(re.compile(r"status=completed"))
    await expect_rows(page, [103])
    await page.go_back()
    await expect_rows(page, carol)


async def test_the_filter_state_survives_a_reload_and_a_bare_visit(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/")
    # The page has finished starting (its first list is drawn) before the toggle is clicked.
    await expect_rows(page, NEWEST_FIRST)
    await expect(page.locator("#filters-panel")).to_be_hidden()

    await page.click("#filters-toggle")
    await expect(page.locator("#filters-panel")).to_be_visible()
    await page.select_option("#f-status", "validation")
    await page.select_option("#f-project_id", "2")
    wanted = ids_where(lambda job: job.project_id == 2 and derive_status(job.stage, job.state) == "validation")
    await expect_rows(page, wanted)
    await expect(page).to_have_url(re.compile(r"filters=open"))

    await page.reload()
    await expect(page.locator("#filters-panel")).to_be_visible()
    await expect(page.locator("#f-status")).to_have_value("validation")
    await expect(page.locator("#f-project_id")).to_have_value("2")
    await expect_rows(page, wanted)

    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"project_id=2.*status=validation.*filters=open"))
    await expect(page.locator("#filters-panel")).to_be_visible()
    await expect_rows(page, wanted)

    await page.click("#filters-toggle")
    await page.click("#filters-reset")
    await expect_rows(page, NEWEST_FIRST)
    await page.reload()
    await expect(page.locator("#filters-panel")).to_be_hidden()
    await expect_rows(page, NEWEST_FIRST)


async def test_the_csv_export_carries_the_filters(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/?assignee=carol")
    await expect_rows(page, ids_where(lambda job: job.assignee == "carol"))
    await expect(page.locator("#export-csv")).to_have_attribute("href", re.compile(r"assignee=carol"))

    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    download = await download_info.value
    assert download.suggested_filename.startswith("cvat-jobs-") and download.suggested_filename.endswith(".csv")
    saved = Path(await download.path())
    lines = (await asyncio.to_thread(saved.read_text, encoding="utf-8")).splitlines()
    assert lines[0].startswith("id,task_id,task_name")
    assert sorted(int(line.split(",", 1)[0]) for line in lines[1:]) == sorted(
        ids_where(lambda job: job.assignee == "carol")
    )


async def test_the_job_page_shows_counts_history_raw_payload_and_the_cvat_link(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/")
    await page.locator('#jobs-body tr[data-job-id="102"] td.task a').click()

    await expect(page).to_have_url(f"{site.url}/jobs/102")
    await expect(page.locator("#job-title")).to_have_text("Job #102 · Bridge inspection south")
    await expect(page.locator('[data-stat="manual"] .card-value')).to_have_text("20")
    await expect(page.locator('[data-stat="interpolated"] .card-value')).to_have_text("0")
    await expect(page.locator('[data-stat="total"] .card-value')).to_have_text("20")
    await expect(page.locator('[data-field="assignee"] a')).to_have_attribute("href", "/?assignee=carol")

    history = page.locator("#history-body tr[data-change-id]")
    await expect(history).to_have_count(2)
    await expect(history.first).to_contain_text("webhook")
    await expect(history.first).to_contain_text("stage: annotation → validation")
    await expect(history.first).to_contain_text("assignee: — → carol")

    link = page.locator("#cvat-link")
    await expect(link).to_have_attribute("href", f"{CVAT_PUBLIC_URL}/tasks/12/jobs/102")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")

    raw = page.locator("#raw-json")
    await expect(raw).to_be_hidden()
    await page.click("#raw-payload summary")
    await expect(raw).to_be_visible()
    assert json.loads(await raw.text_content() or "")["id"] == 102

    await page.goto("/jobs/999999")
    await expect(page.locator("#page-state .page-state-message")).to_have_text("Job #999999 is not in the mirror.")


async def test_text_from_cvat_is_shown_as_text_never_run(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/")
    await expect(page.locator('#jobs-body tr[data-job-id="106"] td.task')).to_have_text(HOSTILE_NAME)
    assert await page.locator("#jobs-body img").count() == 0
    assert await page.locator("#jobs-body script").count() == 0

    await page.goto("/jobs/106")
    await expect(page.locator("#job-title")).to_have_text(f"Job #106 · {HOSTILE_NAME}")
    assert await page.evaluate("window.__xss") is None


async def test_viewers_do_not_get_the_webhook_log(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/webhook-logs")
    state = page.locator("#page-state")
    await expect(state.locator(".page-state-message")).to_have_text("The webhook log is for admins.")
    await expect(state.locator(".page-state-advice")).to_have_text("Ask an admin to open it for you.")
    await expect(state.locator('[data-action="sign-in"]')).to_be_visible()
    await expect(page.locator("#log-view")).to_be_hidden()


async def test_admins_browse_the_webhook_log_and_open_an_entry(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "admin")
    await page.goto("/")
    await expect(page.locator("#nav-webhooks")).to_be_visible()
    await page.click("#nav-webhooks")

    rows = page.locator("#log-body tr.log-row")
    await expect(rows).to_have_count(3)
    await expect(rows.locator("td.status")).to_have_text(["ignored", "rejected", "success"])

    await page.select_option("#f-status", "success")
    await expect(page).to_have_url(re.compile(r"status=success"))
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("td.event")).to_have_text("ping")

    await rows.first.click()
    detail = page.locator("#log-body tr.log-detail")
    await expect(detail.locator('[data-part="body"] pre')).to_contain_text('"event": "ping"')
    await expect(detail.locator('[data-part="headers"]')).to_contain_text("x-signature-256")
    await rows.first.locator("button.row-toggle").click()
    await expect(detail).to_have_count(0)


async def test_operators_sync_and_follow_the_run_to_its_end(
    mirante_urls: StackUrls,
    infra_settings: InfraSettings,
    redis_client: Redis,
    site_page: SitePage,
    migrated_template: str,
) -> None:
    since = f"{int(time.time() * 1000)}-0"
    database_url = await create_test_database(
        mirante_urls.database_url, prefix="cvat_sync_pages_sync_test", template=migrated_template
    )
    try:
        site = await add_users(database_url, infra_settings, ("operator",))
        with (
            CvatSimulator(30) as sim,
            LiveServer(create_app(app_settings(infra_settings, database_url, sim.url))) as server,
        ):
            site.url = server.url
            page = await site_page(site, "operator")
            await page.goto("/sync-runs")
            await expect(page.locator("#runs-body .empty-state-title")).to_have_text("No sync has run yet")
            await page.goto("/")
            await expect(page.locator("#jobs-body .empty-state-title")).to_have_text("No jobs mirrored yet.")
            await expect(page.locator("#jobs-body .empty-state-text")).to_contain_text("Sync now")
            await expect(page.locator("#last-sync")).to_have_text("No sync has run yet. All runs")
            await page.evaluate(
                """() => {
                    window.__syncTexts = [];
                    const text = document.getElementById("sync-text");
                    new MutationObserver(() => window.__syncTexts.push(text.textContent))
                        .observe(text, {childList: true, characterData: true, subtree: true});
                }"""
            )
            sim.fail_next(3, None, endpoint="jobs", delay=1.0)  # slow pages: the progress has time to show

            button = page.locator("#sync-now")
            await button.click()
            panel = page.locator("#sync-panel")
            await expect(panel).to_be_visible()
            await expect(button).to_be_disabled()
            await expect(panel).to_have_attribute("data-status", "success", timeout=20_000)
            await expect(panel.locator('[data-count="created"] b')).to_have_text("30")
            await expect(panel.locator('[data-count="fetched"] b')).to_have_text("30")
            await expect(button).to_be_enabled()
            await expect(page.locator('[data-stat="jobs"] .card-value')).to_have_text("30")
            texts: list[str] = await page.evaluate("window.__syncTexts")
            assert any(re.fullmatch(r"running: fetched \d+ of 30 jobs", shown) for shown in texts), texts
            assert await page.locator("#sync-progress").evaluate("bar => bar.value") == 1
            first_run = await panel.get_attribute("data-run-id")

            # A run started elsewhere is running: the button's 409 shows that run instead.
            sim.fail_next(3, None, endpoint="jobs", delay=1.0)
            async with httpx.AsyncClient(base_url=server.url) as client:
                other = await client.post(
                    "/api/v1/sync-runs", json={}, headers={"Authorization": f"Bearer {site.tokens['operator']}"}
                )
            assert other.status_code == 202, other.text
            await button.click()
            await expect(panel).to_have_attribute("data-run-id", str(other.json()["id"]))
            assert str(other.json()["id"]) != first_run
            await expect(panel).to_have_attribute("data-status", "success", timeout=20_000)
            await expect(panel.locator('[data-count="unchanged"] b')).to_have_text("30")
            last = page.locator("#last-sync")
            await expect(last).to_have_attribute("data-run-id", str(other.json()["id"]))
            await expect(last).to_contain_text(f"through the API by {site.users['operator']}")
            await expect(last).to_contain_text("0 created, 0 updated, 30 unchanged")

            # The runs page lists both, newest first, with what each did.
            await page.locator("#runs-link").click()
            await expect(page).to_have_url(re.compile(r"/sync-runs$"))
            rows = page.locator("#runs-body tr[data-run-id]")
            await expect(rows).to_have_count(2)
            newest, oldest = rows.nth(0), rows.nth(1)
            await expect(newest.locator(".trigger")).to_have_text("API")
            await expect(oldest.locator(".trigger")).to_have_text("Sync now button")
            await expect(oldest.locator(".started-by")).to_have_text(site.users["operator"])
            await expect(oldest.locator(".outcome")).to_have_text("success")
            await expect(oldest.locator(".summary")).to_have_text("30 created, 0 updated, 0 unchanged")
            await expect(oldest.locator(".duration")).to_have_text(re.compile(r"^\d+\.\d s$"))
            await expect(page.locator("#page-summary")).to_have_text("1\u20132 of 2 runs")
    finally:
        await forget_published_events(database_url, redis_client, since)
        await drop_test_database(mirante_urls.database_url, database_url)


async def test_a_sync_started_with_the_button_is_recorded_as_started_from_the_pages(
    site: Site, site_page: SitePage
) -> None:
    page = await site_page(site, "operator")
    await page.goto("/")
    button = page.locator("#sync-now")
    await expect(button).to_be_visible()

    async with page.expect_response(
        lambda response: response.url.endswith("/api/v1/sync-runs") and response.request.method == "POST"
    ) as answered:
        await button.click()
    response = await answered.value

    assert response.status == 202
    assert json.loads(response.request.post_data or "{}") == {"trigger": "web"}
    run = await response.json()
    assert (run["trigger"], run["started_by"]) == ("web", site.users["operator"])
    await expect(page.locator("#sync-panel")).to_have_attribute("data-run-id", str(run["id"]))


async def test_a_failed_load_shows_the_error_in_place_of_the_list_and_retry_brings_it_back(
    site: Site, site_page: SitePage
) -> None:
    page = await site_page(site, "viewer")
    envelope = {"error": {"code": "cvat_not_configured", "message": "CVAT_SYNC_CVAT_TOKEN is not set", "details": None}}

    async def unavailable(route: Any) -> None:
        await route.fulfill(status=503, content_type="application/json", body=json.dumps(envelope))

    await page.route(re.compile(r"/api/v1/jobs\?"), unavailable)
    await page.goto("/")
    state = page.locator("#page-state")
    await expect(state.locator(".page-state-title")).to_have_text("Not configured yet")
    await expect(state.locator(".page-state-message")).to_have_text("CVAT_SYNC_CVAT_TOKEN is not set")
    for content in ("#stats", "#jobs-table", ".pager"):
        await expect(page.locator(content)).to_be_hidden()

    await page.unroute(re.compile(r"/api/v1/jobs\?"))
    await state.locator('[data-action="retry"]').click()
    await expect(state).to_be_hidden()
    await expect(page.locator("#jobs-body tr[data-job-id]").first).to_be_visible()
    await expect(page.locator("#page-summary")).to_be_visible()


async def test_viewers_are_told_the_runs_page_is_for_operators(site: Site, site_page: SitePage) -> None:
    page = await site_page(site, "viewer")
    await page.goto("/")
    await expect(page.locator("#last-sync")).not_to_be_empty()
    await expect(page.locator("#runs-link")).to_have_count(0)
    await page.goto("/sync-runs")
    state = page.locator("#page-state")
    await expect(state.locator(".page-state-message")).to_have_text("The sync runs are for operators.")
    await expect(state.locator(".page-state-advice")).to_contain_text("Ask an admin for operator rights")
    await expect(state.locator('[data-action="sign-in"]')).to_have_attribute("href", "/login?next=%2Fsync-runs")
    await expect(page.locator("#runs-view")).to_be_hidden()
