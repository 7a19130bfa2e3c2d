"""`cvat-sync sync` as a user runs it: real processes for the exit codes and output, the simulator as CVAT,
a database of its own. The remaining cases call the same entry point in this process (a thread), because
every new Python process pays the whole import of the service."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cvat_sync.cli import main, summary
from cvat_sync.sync.models import SyncRun
from cvat_sync.sync.runner import ABANDONED_MESSAGE, run_lock
from cvat_sync.sync.service import run_summary
from mirante.db import create_engine
from mirante.devstack import StackUrls
from mirante.testing.cli import run_entry_point
from mirante.testing.database import create_test_database, drop_test_database

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cvat import DEFAULT_TOKEN, CvatSimulator  # noqa: E402

JOBS = 24
COMMAND = str(Path(sys.executable).with_name("cvat-sync"))
TABLES = "cvat_sync.job_history, cvat_sync.jobs, cvat_sync.sync_runs, cvat_sync.outbox"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cli_database(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    url = await create_test_database(mirante_urls.database_url, prefix="cvat_sync_cli_test", template=migrated_template)
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


@pytest_asyncio.fixture(loop_scope="session")
async def db(cli_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(cli_database)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY"))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def sim() -> Iterator[CvatSimulator]:
    with CvatSimulator(JOBS) as simulator:
        yield simulator


@pytest.fixture
def env(cli_database: str, mirante_urls: StackUrls, sim: CvatSimulator, tmp_path: Path) -> dict[str, str]:
    """What a user exports: the suite's servers, this module's database, the simulator as CVAT."""
    return {
        "MIRANTE_DATABASE_URL": cli_database,
        "MIRANTE_REDIS_URL": mirante_urls.redis_url,
        "MIRANTE_MQTT_URL": mirante_urls.mqtt_url,
        "MIRANTE_DATA_DIR": str(tmp_path / "data"),
        "MIRANTE_LOG_LEVEL": "WARNING",
        "CVAT_SYNC_CVAT_URL": sim.url,
        "CVAT_SYNC_CVAT_TOKEN": DEFAULT_TOKEN,
        "CVAT_SYNC_CVAT_PAGE_SIZE": "10",
        "CVAT_SYNC_SYNC_WRITE_BATCH": "10",
        "CVAT_SYNC_CVAT_MAX_RETRIES": "1",
    }


def start(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(("CVAT_SYNC_", "MIRANTE_"))}
    return subprocess.Popen(
        [COMMAND, "sync", *args],
        env={**inherited, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, stdout, stderr


async def in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *args: str
) -> tuple[int, str, str]:
    """`cvat-sync sync ARGS` through the console entry point, in a thread of this process."""
    prefixes = ("CVAT_SYNC_", "MIRANTE_")
    return await run_entry_point(
        main, ["sync", *args], env=env, env_prefixes=prefixes, monkeypatch=monkeypatch, capsys=capsys
    )


async def rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql))).all())


@pytest_asyncio.fixture(loop_scope="session")
async def second_database(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    """For the failing run, so it can run beside the successful one (one run at a time per database)."""
    url = await create_test_database(mirante_urls.database_url, prefix="cvat_sync_cli_test", template=migrated_template)
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


async def test_exit_codes_output_and_records_of_real_processes(
    db: AsyncEngine, second_database: str, env: dict[str, str], tmp_path: Path
) -> None:
    syncing = start(env, tmp_path)
    bad_argument = start(env, tmp_path, "--status", "done")
    refused = start({**env, "MIRANTE_DATABASE_URL": second_database, "CVAT_SYNC_CVAT_TOKEN": "revoked"}, tmp_path)

    code, stdout, stderr = finish(syncing)
    assert code == 0, stderr
    assert "sync run 1: success" in stdout
    assert f"fetched   {JOBS}" in stdout and f"created   {JOBS}" in stdout and "failed    0" in stdout
    assert f"{JOBS}/{JOBS} jobs" in stderr or "sync [" in stderr, f"no progress line on stderr: {stderr!r}"

    code, stdout, stderr = finish(bad_argument)
    assert code == 2 and "invalid choice: 'done'" in stderr and stdout == ""

    code, stdout, stderr = finish(refused)
    assert code == 1, stderr
    assert "sync run 1: error" in stdout and "CVAT_SYNC_CVAT_TOKEN" in stdout

    runs = await rows(db, "SELECT id, status, trigger, started_by, fetched FROM cvat_sync.sync_runs")
    assert [(run.id, run.status, run.trigger) for run in runs] == [(1, "success", "cli")]
    assert runs[0].started_by and runs[0].fetched == JOBS
    assert (await rows(db, "SELECT count(*) FROM cvat_sync.jobs"))[0][0] == JOBS
    completed = await rows(db, "SELECT count(*) FROM cvat_sync.outbox WHERE type = 'cvat.sync.completed'")
    assert completed[0][0] == 1
    failed_engine = create_engine(second_database)
    try:
        failed = await rows(failed_engine, "SELECT status, error FROM cvat_sync.sync_runs")
    finally:
        await failed_engine.dispose()
    assert failed[0].status == "error" and "401" in failed[0].error


async def test_filters_and_force_are_used_and_recorded(
    db: AsyncEngine,
    env: dict[str, str],
    sim: CvatSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await in_process(monkeypatch, capsys, env)
    assert code == 0, err
    sim.reset_counters()

    code, out, err = await in_process(monkeypatch, capsys, env, "--project-id", "1", "--assignee", "bob", "--force")

    assert code == 0, err
    bobs = sim.job_ids(project_id=1, assignee="bob")
    assert f"fetched   {len(bobs)}" in out and "created   0" in out
    assert f"forced: re-fetched {len(bobs)} jobs and recounted their annotations; 0 changed" in out.splitlines()[0]
    assert sim.job_list_queries[0]["assignee"] == "bob" and sim.job_list_queries[0]["project_id"] == "1"
    assert set(sim.annotation_requests) == set(bobs), "--force recounts every job it covers"
    runs = await rows(db, "SELECT filters, force FROM cvat_sync.sync_runs ORDER BY id")
    assert (runs[-1].filters, runs[-1].force) == ({"project_id": 1, "assignee": "bob"}, True)

    code, out, err = await in_process(monkeypatch, capsys, env, "--status", "completed")
    assert code == 0, err
    completed = [job_id for job_id in sim.job_ids() if sim.status_of(job_id) == "completed"]
    assert f"unchanged {len(completed)}" in out
    assert f"({JOBS - len(completed)} listed jobs were not in status 'completed')" in out


async def test_bad_arguments_and_missing_credentials_exit_2(
    db: AsyncEngine, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (("--project-id", "x"), ("--task-id", "0")):
        with pytest.raises(SystemExit) as stopped:
            await in_process(monkeypatch, capsys, env, *args)
        assert stopped.value.code == 2, args
    credentials = {key: value for key, value in env.items() if key != "CVAT_SYNC_CVAT_TOKEN"}
    code, _, err = await in_process(monkeypatch, capsys, credentials)
    assert code == 2 and "CVAT_SYNC_CVAT_TOKEN" in err
    assert await rows(db, "SELECT id FROM cvat_sync.sync_runs") == [], "nothing was recorded"


async def test_another_active_run_exits_2_and_an_abandoned_one_is_failed(
    db: AsyncEngine, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with db.begin() as connection:
        await connection.execute(text("INSERT INTO cvat_sync.sync_runs (status, trigger) VALUES ('queued', 'api')"))
    code, _, err = await in_process(monkeypatch, capsys, env)
    assert code == 2 and "sync run 1 (api) is queued" in err

    async with db.begin() as connection:
        await connection.execute(text("UPDATE cvat_sync.sync_runs SET status = 'running'"))
    async with run_lock(db) as held:
        assert held, "this test plays the process executing run 1"
        code, _, err = await in_process(monkeypatch, capsys, env)
    assert code == 2 and "sync run 1 is running" in err

    code, _, err = await in_process(monkeypatch, capsys, env)
    assert code == 0, err
    runs = await rows(db, "SELECT id, status, error FROM cvat_sync.sync_runs ORDER BY id")
    assert (runs[0].id, runs[0].status) == (1, "error") and runs[-1].status == "success"
    assert runs[0].error == ABANDONED_MESSAGE, "its process is gone, so the run was failed"


def test_the_summary_names_the_jobs_that_failed() -> None:
    errors = [{"job_id": job_id, "message": f"updated_date: out of range ({job_id})"} for job_id in range(1, 8)]
    run = SyncRun(id=4, status="success", filters={}, fetched=9, created=2, updated=0, unchanged=0, failed=7)
    run.job_errors = errors
    lines = summary(run).splitlines()
    assert "    job 1: updated_date: out of range (1)" in lines
    assert "    job 5: updated_date: out of range (5)" in lines
    assert not any("(6)" in line for line in lines)
    assert lines[-1].startswith("    ... 2 more")


def test_the_summary_says_what_a_forced_run_did() -> None:
    forced = SyncRun(id=5, status="success", force=True, filters={}, fetched=5, created=0, updated=1, unchanged=4)
    forced.deleted, forced.failed = 0, 0
    assert run_summary(forced) == "forced: re-fetched 5 jobs and recounted their annotations; 1 changed"
    plain = SyncRun(id=6, status="success", force=False, filters={}, fetched=5, created=1, updated=0, unchanged=4)
    plain.deleted, plain.failed = 2, 1
    assert run_summary(plain) == "1 created, 0 updated, 4 unchanged, 2 marked deleted, 1 failed"
