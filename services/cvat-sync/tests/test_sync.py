"""The pull sync against the CVAT simulator (real HTTP) and a database of its own (batches really commit)."""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cvat_sync.config import Settings
from cvat_sync.cvat.client import CvatClient
from cvat_sync.cvat.errors import CvatAuthenticationError, CvatUnavailableError
from cvat_sync.jobs.models import Job, JobChange
from cvat_sync.sync import service
from cvat_sync.sync import stored as stored_jobs
from cvat_sync.sync import writing as sync_writing
from cvat_sync.sync.engine import SyncEngine
from cvat_sync.sync.errors import InvalidSyncFiltersError, SyncAlreadyRunningError
from cvat_sync.sync.filters import SyncFilters
from cvat_sync.sync.models import SyncRun
from cvat_sync.sync.runner import ABANDONED_MESSAGE, reap_abandoned_runs, run_lock, run_next
from cvat_sync.sync.service import execute_run, start_run
from cvat_sync.sync.stats import SyncStats
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.database import create_test_database, drop_test_database

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cvat import DEFAULT_TOKEN, CvatSimulator  # noqa: E402

JOBS = 40
FAST_RETRIES = {"retry_base_seconds": 0.001, "retry_max_seconds": 0.01}
TABLES = "cvat_sync.job_history, cvat_sync.jobs, cvat_sync.sync_runs, cvat_sync.outbox"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sync_engine_db(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[AsyncEngine]:
    """A database for this module only: the sync commits batch by batch, so rollback isolation is not an option."""
    url = await create_test_database(mirante_urls.database_url, prefix="cvat_sync_test", template=migrated_template)
    engine = create_engine(url, DatabaseSettings(pool_size=5, max_overflow=5))
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_test_database(mirante_urls.database_url, url)


@pytest_asyncio.fixture(loop_scope="session")
async def maker(sync_engine_db: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with sync_engine_db.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY"))
    yield create_sessionmaker(sync_engine_db)


@pytest.fixture
def sim() -> Iterator[CvatSimulator]:
    with CvatSimulator(JOBS) as simulator:
        yield simulator


def settings_for(sim: CvatSimulator, infra: InfraSettings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "infra": infra,
        "cvat_url": sim.url,
        "cvat_token": SecretStr(DEFAULT_TOKEN),
        "cvat_page_size": 15,
        "cvat_max_retries": 3,
        "cvat_concurrency": 4,
        "sync_write_batch": 10,
    }
    values.update(overrides)
    return Settings(**values)


async def sync(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    filters: SyncFilters | None = None,
    *,
    force: bool = False,
) -> SyncStats:
    async with CvatClient(settings, **FAST_RETRIES) as client:
        return await SyncEngine(maker, client, settings).run(filters or SyncFilters(), force=force)


def counts(stats: SyncStats) -> tuple[int, int, int, int, int, int]:
    return stats.fetched, stats.created, stats.updated, stats.unchanged, stats.deleted, stats.failed


async def scalar(maker: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> Any:
    async with maker() as session:
        return await session.scalar(text(sql), params)


async def stored_job(maker: async_sessionmaker[AsyncSession], job_id: int) -> Job:
    async with maker() as session:
        job = await session.get(Job, job_id)
        assert job is not None, f"job {job_id} not stored"
        return job


async def live_ids(maker: async_sessionmaker[AsyncSession]) -> list[int]:
    async with maker() as session:
        return list(await session.scalars(select(Job.id).where(Job.deleted_at.is_(None)).order_by(Job.id)))


# -- what gets written ---------------------------------------------------------------------------------------


async def test_full_sync_creates_every_job_with_counts_names_history_and_events(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    stats = await sync(maker, settings_for(sim, infra_settings))

    assert counts(stats) == (JOBS, JOBS, 0, 0, 0, 0) and stats.expected == JOBS
    assert await live_ids(maker) == list(range(1, JOBS + 1))
    assert sim.annotation_requests == dict.fromkeys(range(1, JOBS + 1), 1), "counts fetched once per new job"
    job = await stored_job(maker, 13)
    manual, interpolated = sim.expected_counts(13)
    assert (job.manual_annotations, job.interpolated_annotations, job.total_annotations) == (
        manual,
        interpolated,
        manual + interpolated,
    )
    raw = sim.job(13)
    assert (job.task_name, job.project_name, job.status) == (raw["task_name"], raw["project_name"], raw["status"])
    assert job.raw == raw
    assert await scalar(maker, "SELECT count(*) FROM cvat_sync.job_history WHERE kind = 'created'") == JOBS
    assert await scalar(maker, "SELECT count(*) FROM cvat_sync.outbox WHERE type = 'cvat.job.created'") == JOBS


async def test_an_unchanged_resync_writes_nothing_and_fetches_no_counts(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    await sync(maker, settings)
    sim.reset_counters()

    stats = await sync(maker, settings)

    assert counts(stats) == (JOBS, 0, 0, JOBS, 0, 0)
    assert sim.requests["annotations"] == 0
    assert await scalar(maker, "SELECT count(*) FROM cvat_sync.job_history") == JOBS
    assert await scalar(maker, "SELECT count(*) FROM cvat_sync.outbox") == JOBS


async def test_only_changed_jobs_are_updated_and_recounted(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    await sync(maker, settings)
    sim.update_job(5, stage="acceptance", state="completed")
    sim.update_job(17, assignee="alice")
    sim.update_job(23, annotations=(40, 2, 3))
    sim.reset_counters()

    stats = await sync(maker, settings)

    assert counts(stats) == (JOBS, 0, 3, JOBS - 3, 0, 0)
    assert set(sim.annotation_requests) == {5, 17, 23}
    assert (await stored_job(maker, 5)).status == "completed"
    assert (await stored_job(maker, 17)).assignee == "alice"
    assert (await stored_job(maker, 23)).total_annotations == 45
    async with maker() as session:
        change = await session.scalar(select(JobChange).where(JobChange.job_id == 5, JobChange.kind == "updated"))
    assert change is not None and change.source == "sync"
    assert change.changes["status"][1] == "completed"


async def test_force_rewrites_and_recounts_every_job(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    await sync(maker, settings)
    async with maker() as session, session.begin():
        await session.execute(text("UPDATE cvat_sync.jobs SET total_annotations = 0 WHERE id = 7"))
    sim.reset_counters()

    stats = await sync(maker, settings, force=True)

    assert sim.requests["annotations"] == JOBS
    assert counts(stats) == (JOBS, 0, 1, JOBS - 1, 0, 0), "only job 7 really changed"
    assert (await stored_job(maker, 7)).total_annotations == sum(sim.expected_counts(7))


async def test_jobs_without_names_get_them_from_tasks_and_projects(
    maker: async_sessionmaker[AsyncSession], infra_settings: InfraSettings
) -> None:
    with CvatSimulator(20, names_in_jobs=False) as sim:
        stats = await sync(maker, settings_for(sim, infra_settings))
        job = await stored_job(maker, 12)
        assert (job.task_name, job.project_name) == ("task-00003", "Project 1")
        assert stats.created == 20
        assert sim.requests["task"] == 4, "one request per task, not per job"
        assert sim.requests["project"] == 0, "tasks carry their project's name"


# -- filters and deletion ------------------------------------------------------------------------------------


async def test_server_side_filters_go_to_cvat_and_status_is_applied_locally(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    stats = await sync(maker, settings, SyncFilters(project_id=1))
    assert await live_ids(maker) == sim.job_ids(project_id=1)
    assert stats.expected == len(sim.job_ids(project_id=1))
    assert all(query.get("project_id") == "1" for query in sim.job_list_queries)

    await sync(maker, settings, SyncFilters(task_id=11, assignee="carol"))
    assert sim.job_list_queries[-1]["task_id"] == "11" and sim.job_list_queries[-1]["assignee"] == "carol"

    sim.reset_counters()
    stats = await sync(maker, settings, SyncFilters(status="completed"))
    completed = [job_id for job_id in range(1, JOBS + 1) if sim.status_of(job_id) == "completed"]
    assert stats.fetched == JOBS, "CVAT cannot filter by status: every job is listed"
    assert stats.created + stats.unchanged == len(completed)
    assert stats.skipped == JOBS - len(completed)
    assert all("status" not in query for query in sim.job_list_queries)
    assert set(sim.annotation_requests) <= set(completed)


async def test_full_sync_deletes_missing_jobs_filtered_sync_does_not(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    await sync(maker, settings)
    sim.delete_job(10)
    sim.delete_job(11)
    stats = await sync(maker, settings, SyncFilters(project_id=1))
    assert stats.deleted == 0
    assert 10 in await live_ids(maker), "a filtered sync proves nothing about other jobs"

    stats = await sync(maker, settings)

    assert counts(stats) == (JOBS - 2, 0, 0, JOBS - 2, 2, 0)
    assert (await stored_job(maker, 10)).deleted_at is not None
    assert 10 not in await live_ids(maker) and 12 in await live_ids(maker)
    assert await scalar(maker, "SELECT count(*) FROM cvat_sync.outbox WHERE type = 'cvat.job.deleted'") == 2


async def test_a_job_the_listing_skipped_is_checked_not_deleted(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    await sync(maker, settings)
    sim.hide_from_listing(30)
    sim.delete_job(31)
    sim.reset_counters()

    stats = await sync(maker, settings)

    assert stats.deleted == 1 and (await stored_job(maker, 31)).deleted_at is not None
    assert (await stored_job(maker, 30)).deleted_at is None, "CVAT still has it: the listing skipped it"
    assert sim.requests["job"] == 2, "only the two unseen jobs were looked up"


async def test_deletions_are_found_across_chunks_of_stored_jobs(
    maker: async_sessionmaker[AsyncSession],
    sim: CvatSimulator,
    infra_settings: InfraSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stored_jobs, "STORED_CHUNK", 7)
    settings = settings_for(sim, infra_settings)
    await sync(maker, settings)
    for job_id in (1, 20, JOBS):
        sim.delete_job(job_id)
    sim.hide_from_listing(21)
    sim.reset_counters()

    stats = await sync(maker, settings)

    assert counts(stats) == (JOBS - 3, 0, 0, JOBS - 3, 3, 0), "the skipped job 21 was found and kept"
    assert set(await live_ids(maker)) == set(range(1, JOBS + 1)) - {1, 20, JOBS}
    assert sim.requests["job"] == 4


async def test_without_id_order_nothing_is_deleted_but_everything_is_synced(
    maker: async_sessionmaker[AsyncSession], infra_settings: InfraSettings
) -> None:
    with CvatSimulator(JOBS, honour_sort=False) as sim:
        settings = settings_for(sim, infra_settings)
        assert counts(await sync(maker, settings)) == (JOBS, JOBS, 0, 0, 0, 0)
        sim.delete_job(5)
        sim.update_job(6, state="completed")
        stats = await sync(maker, settings)
    assert counts(stats) == (JOBS - 1, 0, 1, JOBS - 2, 0, 0), "no proof of deletion without id order"
    assert 5 in await live_ids(maker)


# -- failures ------------------------------------------------------------------------------------------------


async def test_bad_payloads_are_counted_as_failed_and_not_deleted(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    await sync(maker, settings)
    sim.corrupt_job(4, updated_date="soon")
    state_before = sim.job(8)["state"]
    sim.update_job(8, state="completed")
    sim.break_annotations(8)

    stats = await sync(maker, settings)

    assert counts(stats) == (JOBS, 0, 0, JOBS - 2, 0, 2)
    assert (await stored_job(maker, 4)).deleted_at is None, "an unreadable job is not a deleted one"
    assert (await stored_job(maker, 8)).state == state_before, "a job whose counts failed is not written"


async def test_a_job_with_impossible_values_is_skipped_and_recorded_while_the_others_are_written(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    sim.corrupt_job(17, updated_date="0001-01-01T00:00:00Z")
    sim.corrupt_job(23, frame_count=2**40)
    run_id = await start(maker, status="running")
    async with CvatClient(settings, **FAST_RETRIES) as client:
        run = await execute_run(maker, settings, run_id, client=client)

    assert (run.status, run.error, run.created, run.failed) == ("success", None, JOBS - 2, 2)
    assert [(item["job_id"], item["message"].split(":")[0]) for item in run.job_errors] == [
        (17, "updated_date"),
        (23, "frame_count"),
    ]
    assert "out of range" in run.job_errors[0]["message"]
    assert await live_ids(maker) == [job_id for job_id in range(1, JOBS + 1) if job_id not in (17, 23)]

    again = await sync(maker, settings)
    assert counts(again) == (JOBS, 0, 0, JOBS - 2, 0, 2), "a second sync over the same data ends the same way"


@pytest_asyncio.fixture(loop_scope="session")
async def refused_job_7(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """The database refuses to store job 7, as it refuses a value out of a column's range."""
    async with maker() as session, session.begin():
        await session.execute(
            text(
                "CREATE FUNCTION cvat_sync.test_refuse_job() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test trigger' USING ERRCODE = '22003'; END $$"
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER test_refuse_job BEFORE INSERT ON cvat_sync.jobs FOR EACH ROW WHEN (NEW.id = 7) "
                "EXECUTE FUNCTION cvat_sync.test_refuse_job()"
            )
        )
    try:
        yield
    finally:
        async with maker() as session, session.begin():
            await session.execute(text("DROP FUNCTION cvat_sync.test_refuse_job() CASCADE"))


async def test_a_job_the_database_refuses_fails_alone(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings, refused_job_7: None
) -> None:
    engine_run = await start(maker, status="running")
    settings = settings_for(sim, infra_settings)
    async with CvatClient(settings, **FAST_RETRIES) as client:
        run = await execute_run(maker, settings, engine_run, client=client)

    assert (run.status, run.created, run.failed) == ("success", JOBS - 1, 1)
    assert run.job_errors == [{"job_id": 7, "message": sync_writing.REFUSED_BY_DATABASE}]
    assert "refused by the test trigger" not in str(run.job_errors)
    assert await live_ids(maker) == [job_id for job_id in range(1, JOBS + 1) if job_id != 7]


async def test_an_internal_failure_is_recorded_in_words_for_people(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    run_id = await start(maker, status="running")
    async with maker() as session, session.begin():
        await session.execute(
            text(
                "CREATE FUNCTION cvat_sync.test_break_progress() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'broken by the test trigger'; END $$"
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER test_break_progress BEFORE UPDATE ON cvat_sync.sync_runs FOR EACH ROW "
                "WHEN (NEW.status = 'running' AND NEW.fetched > 0) EXECUTE FUNCTION cvat_sync.test_break_progress()"
            )
        )
    try:
        async with CvatClient(settings, **FAST_RETRIES) as client:
            run = await execute_run(maker, settings, run_id, client=client)
    finally:
        async with maker() as session, session.begin():
            await session.execute(text("DROP FUNCTION cvat_sync.test_break_progress() CASCADE"))

    assert run.status == "error"
    assert run.error == service.INTERNAL_ERROR_MESSAGE
    for internal in ("broken by the test trigger", "Error", "asyncpg", "sqlalchemy"):
        assert internal not in (run.error or "")


async def test_a_sync_stopped_by_cvat_leaves_no_coroutine_unawaited(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings, cvat_max_retries=0, cvat_concurrency=2)
    sim.fail_next(1000, 503, endpoint="annotations")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CvatUnavailableError):
            await sync(maker, settings)
        gc.collect()
    unawaited = [str(warning.message) for warning in caught if "never awaited" in str(warning.message)]
    assert unawaited == []


async def test_throttling_and_server_errors_are_retried_during_a_sync(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    sim.fail_next(2, 503, endpoint="jobs", page=2)
    sim.fail_next(3, 429, endpoint="annotations", retry_after=0)

    stats = await sync(maker, settings_for(sim, infra_settings))

    assert counts(stats) == (JOBS, JOBS, 0, 0, 0, 0)
    assert sim.requests["annotations"] == JOBS + 3


async def test_a_late_failure_keeps_the_batches_already_written(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings, cvat_max_retries=1, sync_write_batch=15)
    sim.fail_next(10, 500, endpoint="jobs", page=3)
    with pytest.raises(CvatUnavailableError, match="500"):
        await sync(maker, settings)
    assert await live_ids(maker) == list(range(1, 31)), "pages 1 and 2 were committed"


async def test_a_refused_token_stops_the_run_with_a_clear_error(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings, cvat_token=SecretStr("revoked"))
    with pytest.raises(CvatAuthenticationError, match="CVAT_SYNC_CVAT_TOKEN"):
        await sync(maker, settings)


# -- runs ----------------------------------------------------------------------------------------------------


async def start(maker: async_sessionmaker[AsyncSession], **kwargs: Any) -> int:
    values: dict[str, Any] = {"filters": SyncFilters(), "force": False, "trigger": "api", "started_by": "lead"}
    values.update(kwargs)
    async with maker() as session, session.begin():
        return (await start_run(session, **values)).id


async def test_a_run_records_progress_stats_outcome_and_emits_completion(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings)
    run_id = await start(maker, status="running", filters=SyncFilters(project_id=1))
    seen: list[tuple[int, int | None]] = []
    async with CvatClient(settings, **FAST_RETRIES) as client:
        run = await execute_run(
            maker,
            settings,
            run_id,
            client=client,
            on_progress=lambda stats: seen.append((stats.fetched, stats.expected)),
        )

    wanted = len(sim.job_ids(project_id=1))
    assert (run.status, run.error, run.fetched, run.created, run.expected) == ("success", None, wanted, wanted, wanted)
    assert run.finished_at is not None and run.started_at is not None and run.finished_at >= run.started_at
    assert len(seen) >= 2 and seen == sorted(seen), "progress reported batch by batch"
    async with maker() as session:
        stored = await session.get(SyncRun, run_id)
        assert stored is not None and stored.status == "success" and stored.filters == {"project_id": 1}
        envelope = await session.scalar(
            text("SELECT envelope FROM cvat_sync.outbox WHERE type = 'cvat.sync.completed' AND subject = :subject"),
            {"subject": f"sync-run/{run_id}"},
        )
    assert envelope is not None
    assert envelope["data"]["created"] == wanted and envelope["data"]["status"] == "success"


async def test_a_failed_run_is_recorded_as_error(
    maker: async_sessionmaker[AsyncSession], sim: CvatSimulator, infra_settings: InfraSettings
) -> None:
    settings = settings_for(sim, infra_settings, cvat_token=SecretStr("revoked"))
    run_id = await start(maker, status="running")
    run = await execute_run(maker, settings, run_id)
    assert run.status == "error" and run.error is not None and "CVAT_SYNC_CVAT_TOKEN" in run.error
    assert await scalar(maker, "SELECT count(*) FROM cvat_sync.outbox WHERE type = 'cvat.sync.completed'") == 1


async def test_one_run_at_a_time(maker: async_sessionmaker[AsyncSession]) -> None:
    first = await start(maker)
    with pytest.raises(SyncAlreadyRunningError) as conflict:
        await start(maker, trigger="cli", status="running")
    assert conflict.value.status_code == 409
    assert conflict.value.details == {"run_id": first, "status": "queued"}
    assert str(first) in conflict.value.message
    with pytest.raises(InvalidSyncFiltersError):
        SyncFilters(project_id=0)
    with pytest.raises(InvalidSyncFiltersError):
        SyncFilters(status="done")  # type: ignore[arg-type]


async def test_the_worker_claims_queued_runs_and_executes_them(
    maker: async_sessionmaker[AsyncSession],
    sync_engine_db: AsyncEngine,
    sim: CvatSimulator,
    infra_settings: InfraSettings,
) -> None:
    settings = settings_for(sim, infra_settings)
    run_id = await start(maker, filters=SyncFilters(task_id=3))
    async with CvatClient(settings, **FAST_RETRIES) as client:
        assert await run_next(sync_engine_db, maker, settings, client=client) == run_id
        assert await run_next(sync_engine_db, maker, settings, client=client) is None, "nothing left queued"
    async with maker() as session:
        run = await session.get(SyncRun, run_id)
    assert run is not None and (run.status, run.created) == ("success", len(sim.job_ids(task_id=3)))


async def test_runs_abandoned_by_a_dead_process_are_failed_but_live_ones_are_not(
    maker: async_sessionmaker[AsyncSession], sync_engine_db: AsyncEngine, infra_settings: InfraSettings
) -> None:
    run_id = await start(maker, status="running", trigger="cli")
    settings = Settings(infra=infra_settings, cvat_token=SecretStr("unused"))
    async with run_lock(sync_engine_db) as held:
        assert held, "the process that would run it is gone: nobody holds the lock"
        async with run_lock(sync_engine_db) as also:
            assert not also, "the lock is exclusive"
            assert await run_next(sync_engine_db, maker, settings) is None, "a live holder blocks others"
        assert await scalar(maker, "SELECT status FROM cvat_sync.sync_runs WHERE id = :id", id=run_id) == "running"
        assert await reap_abandoned_runs(maker) == [run_id]
    async with maker() as session:
        run = await session.get(SyncRun, run_id)
    assert run is not None and run.status == "error" and run.error == ABANDONED_MESSAGE
    assert run.finished_at is not None and run.finished_at <= datetime.now(UTC)
    assert await scalar(maker, "SELECT count(*) FROM cvat_sync.sync_runs WHERE status IN ('queued', 'running')") == 0
