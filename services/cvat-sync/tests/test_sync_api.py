"""The sync-run endpoints: who may start and read runs, validation, one run at a time, and the worker that
executes a run started through the API against the CVAT simulator."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cvat_sync.config import Settings
from cvat_sync.jobs.models import Job
from cvat_sync.main import SERVICE, create_app
from cvat_sync.sync.models import SyncRun
from mirante.auth.commands import create_user
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.database import create_test_database, drop_test_database
from mirante.testing.plugin import ClientFactory, HeadersFactory

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cvat import DEFAULT_TOKEN, CvatSimulator  # noqa: E402

RUNS = "/api/v1/sync-runs"


@pytest.fixture
def sim() -> Iterator[CvatSimulator]:
    with CvatSimulator(30) as simulator:
        yield simulator


def app_settings(infra: InfraSettings, url: str = "http://127.0.0.1:9", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "infra": infra,
        "cvat_url": url,
        "cvat_token": SecretStr(DEFAULT_TOKEN),
        "cvat_legacy_token": None,
        "cvat_username": None,
        "cvat_password": None,
        "cvat_page_size": 10,
    }
    values.update(overrides)
    return Settings(**values)


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_client: ClientFactory, infra_settings: InfraSettings) -> httpx.AsyncClient:
    return await make_client(create_app(app_settings(infra_settings)))


async def test_an_operator_starts_a_run_and_anyone_signed_in_follows_it(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")

    started = await client.post(RUNS, json={"project_id": 3, "status": "completed", "force": True}, headers=operator)

    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["status"], run["trigger"], run["force"]) == ("queued", "api", True)
    assert run["filters"] == {"project_id": 3, "status": "completed"}
    assert run["started_by"].startswith("operator-")
    assert run["progress"] is None and run["fetched"] == 0

    detail = await client.get(f"{RUNS}/{run['id']}", headers=viewer)
    assert detail.status_code == 200 and detail.json()["id"] == run["id"]
    listed = await client.get(RUNS, headers=viewer, params={"page_size": 5})
    assert listed.status_code == 200
    assert listed.json()["count"] >= 1 and listed.json()["results"][0]["id"] == run["id"], "newest first"
    assert (await client.get(RUNS, headers=viewer, params={"status": "success"})).json()["count"] == 0


async def test_the_jobs_a_run_skipped_are_listed_with_it(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    skipped = [{"job_id": 17, "message": "updated_date: out of range: must be between 1970-01-01 and 9999-12-31"}]
    run_id = await db_session.scalar(
        insert(SyncRun).values(status="success", trigger="cli", failed=1, job_errors=skipped).returning(SyncRun.id)
    )
    detail = await client.get(f"{RUNS}/{run_id}", headers=await auth_headers("viewer"))
    assert detail.status_code == 200
    assert (detail.json()["failed"], detail.json()["job_errors"]) == (1, skipped)


async def test_the_pages_sync_button_is_recorded_as_a_web_start(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    operator = await auth_headers("operator")

    started = await client.post(RUNS, json={"trigger": "web", "task_id": 4}, headers=operator)

    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["trigger"], run["filters"]) == ("web", {"task_id": 4})
    assert (await client.get(f"{RUNS}/{run['id']}", headers=operator)).json()["trigger"] == "web"
    conflict = await client.post(RUNS, json={"trigger": "web"}, headers=operator)
    assert conflict.status_code == 409
    assert f"sync run {run['id']} (web by {run['started_by']})" in conflict.json()["error"]["message"]


async def test_a_second_start_while_one_is_active_is_a_conflict_naming_it(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    operator = await auth_headers("operator")
    first = (await client.post(RUNS, headers=operator)).json()

    second = await client.post(RUNS, json={"task_id": 4}, headers=operator)

    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "sync_already_running"
    assert error["details"]["run_id"] == first["id"]
    assert f"sync run {first['id']}" in error["message"]


async def test_a_refused_start_spends_no_run_id(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    operator = await auth_headers("operator")
    first = (await client.post(RUNS, headers=operator)).json()
    for _ in range(3):
        assert (await client.post(RUNS, headers=operator)).status_code == 409
    await db_session.execute(update(SyncRun).where(SyncRun.id == first["id"]).values(status="success"))

    following = await client.post(RUNS, headers=operator)

    assert following.status_code == 202, following.text
    assert following.json()["id"] == first["id"] + 1


async def test_roles_and_authentication(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    viewer = await auth_headers("viewer")
    assert (await client.post(RUNS, headers=viewer)).status_code == 403
    assert (await client.post(RUNS)).status_code == 401
    assert (await client.get(RUNS)).status_code == 401
    assert (await client.get(f"{RUNS}/1")).status_code == 401
    assert (await client.get(RUNS, headers=viewer)).status_code == 200
    missing = await client.get(f"{RUNS}/987654", headers=viewer)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "no sync run 987654"


@pytest.mark.parametrize(
    "body",
    [
        {"project_id": 0},
        {"task_id": "x"},
        {"status": "done"},
        {"assignee": ""},
        {"projects": [1]},
        {"trigger": "cli"},
        {"trigger": "cron"},
        {"trigger": None},
    ],
)
async def test_bad_filters_are_refused(client: httpx.AsyncClient, auth_headers: HeadersFactory, body: Any) -> None:
    response = await client.post(RUNS, json=body, headers=await auth_headers("operator"))
    assert response.status_code == 422, response.text


async def test_without_cvat_credentials_nothing_is_queued(
    make_client: ClientFactory, infra_settings: InfraSettings, auth_headers: HeadersFactory
) -> None:
    client = await make_client(create_app(app_settings(infra_settings, cvat_token=None)))
    headers = await auth_headers("operator")
    response = await client.post(RUNS, headers=headers)
    assert response.status_code == 503
    assert "CVAT_SYNC_CVAT_TOKEN" in response.json()["error"]["message"]
    assert (await client.get(RUNS, headers=headers, params={"status": "queued"})).json()["count"] == 0


# -- end to end: committed requests, the app's worker, the simulator ---------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def own_database(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    """The worker commits; a database of its own keeps that away from the other tests."""
    url = await create_test_database(mirante_urls.database_url, prefix="cvat_sync_api_test", template=migrated_template)
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


async def test_a_run_started_through_the_api_is_executed_by_the_worker(
    own_database: str, infra_settings: InfraSettings, sim: CvatSimulator, redis_client: Redis
) -> None:
    since = f"{int(time.time() * 1000)}-0"
    infra = infra_settings.model_copy(update={"database": DatabaseSettings(url=own_database, pool_size=3)})
    engine = create_engine(own_database)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            user = await create_user(
                session, username=f"lead-{uuid.uuid4().hex[:8]}", password="lead-pass-1234", role="operator"
            )
        token = TokenCodec.from_settings(infra.jwt).issue(user.id, username=user.username, role=user.role).token
        headers = {"Authorization": f"Bearer {token}"}
        app = create_app(app_settings(infra, sim.url))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
        ):
            started = await client.post(RUNS, json={"project_id": 1}, headers=headers)
            assert started.status_code == 202, started.text
            run = await wait_for_end(client, started.json()["id"], headers)

        wanted = len(sim.job_ids(project_id=1))
        assert (run["status"], run["created"], run["fetched"], run["progress"]) == ("success", wanted, wanted, 1.0)
        assert run["started_by"] == user.username and run["duration_seconds"] is not None
        async with create_sessionmaker(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(Job)) == wanted
        assert all(query.get("project_id") == "1" for query in sim.job_list_queries)
    finally:
        await forget_published_events(engine, redis_client, since)
        await engine.dispose()


async def forget_published_events(engine: AsyncEngine, redis: Redis, since: str) -> None:
    """The app's outbox relay published this test's events to the service's real stream: remove them."""
    async with engine.connect() as connection:
        ours = {str(event_id) for event_id in await connection.scalars(text("SELECT id FROM cvat_sync.outbox"))}
    entries: Any = await redis.xrange(SERVICE.stream, min=since)
    stale = [entry_id for entry_id, fields in entries if fields.get(b"id", b"").decode() in ours]
    if stale:
        await redis.xdel(SERVICE.stream, *stale)


async def wait_for_end(client: httpx.AsyncClient, run_id: int, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(150):
        run: dict[str, Any] = (await client.get(f"{RUNS}/{run_id}", headers=headers)).json()
        if run["status"] in ("success", "error"):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish: {run}")
