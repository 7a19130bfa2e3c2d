"""Webhooks keep annotation counts current: the jobs they write are recounted from CVAT after the answer,
coalesced and bounded, and a recount that fails is left to the next sync."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cvat_sync.config import Settings
from cvat_sync.cvat.client import CvatClient
from cvat_sync.jobs.models import Job, JobChange
from cvat_sync.main import create_app
from cvat_sync.sync.engine import SyncEngine
from cvat_sync.sync.filters import SyncFilters
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.database import create_test_database, drop_test_database

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cvat import DEFAULT_TOKEN, CvatSimulator  # noqa: E402

SECRET = "recount-secret"
WEBHOOK = "/api/v1/webhooks/cvat"
JOB = 3
# Long enough that the burst below lands inside one window, short enough to keep the test quick.
DELAY_SECONDS = 5.0  # wide enough for five deliveries and a read on a loaded machine


@pytest.fixture
def sim() -> Iterator[CvatSimulator]:
    with CvatSimulator(10) as simulator:
        yield simulator


@pytest_asyncio.fixture(loop_scope="session")
async def own_database(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    """The app's workers commit; a database of its own keeps that away from the other tests."""
    url = await create_test_database(
        mirante_urls.database_url, prefix="cvat_sync_recount_test", template=migrated_template
    )
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database)
    try:
        yield engine
    finally:
        await engine.dispose()


def settings_for(infra: InfraSettings, database: str, sim: CvatSimulator) -> Settings:
    return Settings(
        infra=infra.model_copy(update={"database": DatabaseSettings(url=database, pool_size=3)}),
        cvat_url=sim.url,
        cvat_token=SecretStr(DEFAULT_TOKEN),
        cvat_legacy_token=None,
        cvat_username=None,
        cvat_password=None,
        cvat_max_retries=0,
        webhook_secret=SecretStr(SECRET),
        webhook_rejected_rate_limit="100000/minute",
        recount_delay_seconds=DELAY_SECONDS,
        recount_concurrency=2,
        recount_timeout_seconds=10,
    )


async def fire(client: httpx.AsyncClient, sim: CvatSimulator, event: str) -> dict[str, Any]:
    delivery = sim.webhook_delivery(event, JOB, SECRET)
    response = await client.post(WEBHOOK, content=delivery.body, headers=delivery.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == "success", answer
    return answer


async def stored(engine: AsyncEngine) -> Job:
    async with create_sessionmaker(engine)() as session:
        job = await session.get(Job, JOB)
    assert job is not None
    return job


async def counted(engine: AsyncEngine, sim: CvatSimulator) -> Job:
    """The stored job once its counts are CVAT's and no recount is pending."""
    manual, interpolated = sim.expected_counts(JOB)
    for _ in range(200):
        job = await stored(engine)
        if job.counts_requested_at is None and (job.manual_annotations, job.interpolated_annotations) == (
            manual,
            interpolated,
        ):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {JOB} was not recounted: {job.manual_annotations}, {job.counts_requested_at}")


async def test_webhooks_recount_the_jobs_they_write_once_per_burst(
    own_database: str, engine: AsyncEngine, infra_settings: InfraSettings, sim: CvatSimulator
) -> None:
    app = create_app(settings_for(infra_settings, own_database, sim))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        await fire(client, sim, "create:job")
        first = await counted(engine, sim)
        assert first.annotations_counted_at is not None

        sim.reset_counters()
        for shapes in (7, 8, 9, 10, 11):
            sim.update_job(JOB, state="in progress", annotations=(shapes, 2, 1))
            await fire(client, sim, "update:job")
        # Answered before any recount: the webhook's own update is stored, its counts are asked for.
        answered = await stored(engine)
        assert answered.state == "in progress" and answered.counts_requested_at is not None
        assert answered.manual_annotations == first.manual_annotations

        job = await counted(engine, sim)

    assert (job.manual_annotations, job.interpolated_annotations, job.total_annotations) == (13, 1, 14)
    assert job.annotations_counted_at is not None and job.annotations_counted_at > first.annotations_counted_at
    assert sim.annotation_requests[JOB] == 1, "five webhooks within the delay cost one recount"
    async with create_sessionmaker(engine)() as session:
        changes = list(await session.scalars(select(JobChange).where(JobChange.job_id == JOB).order_by(JobChange.id)))
    assert changes[-1].changes["manual_annotations"] == [first.manual_annotations, 13]


async def test_a_failed_recount_keeps_the_webhooks_update_and_the_next_sync_counts(
    own_database: str,
    engine: AsyncEngine,
    infra_settings: InfraSettings,
    sim: CvatSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(infra_settings, own_database, sim)
    app = create_app(settings)
    caplog.set_level(logging.WARNING, logger="cvat_sync.webhooks.recount")
    sim.fail_next(1, 503, endpoint="annotations")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        await fire(client, sim, "create:job")
        for _ in range(200):
            if any(f"job {JOB} not refreshed" in record.getMessage() for record in caplog.records):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the failed recount was not logged")

    job = await stored(engine)
    assert job.counts_requested_at is not None and job.annotations_counted_at is None, "still asked for"
    maker = create_sessionmaker(engine)
    async with CvatClient(settings) as cvat:
        stats = await SyncEngine(maker, cvat, settings).run(SyncFilters(task_id=job.task_id))

    siblings = len(sim.job_ids(task_id=job.task_id)) - 1
    assert (stats.created, stats.updated) == (siblings, 1), "the job did not move in CVAT, yet it was recounted"
    recounted = await counted(engine, sim)
    assert recounted.annotations_counted_at is not None
    async with CvatClient(settings) as cvat:
        again = await SyncEngine(maker, cvat, settings).run(SyncFilters(task_id=job.task_id))
    assert (again.updated, again.unchanged) == (0, siblings + 1), "once counted, the job is unchanged again"
