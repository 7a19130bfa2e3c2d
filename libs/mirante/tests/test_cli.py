"""The `mirante` command, run as users run it: a subprocess with `MIRANTE_*` pointing at a database of its own.

Each process spends seconds importing, so the commands that change a database start together once (`runs`)
and the tests check their results; the failure cases call `main` in this process with the same environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from mirante.auth.commands import create_user
from mirante.cli import main
from mirante.db import async_url, create_engine, create_sessionmaker, plain_url
from mirante.devstack import StackUrls
from mirante.migrations import find_alembic_ini, history_config, installed_histories
from mirante.service import discover_services
from mirante.settings import DatabaseSettings, InfraSettings, MqttSettings, RedisSettings
from mirante.testing.apps import library_app
from mirante.testing.database import create_test_database, drop_test_database

MIRANTE = Path(sys.executable).with_name("mirante")
COMMAND_TIMEOUT_SECONDS = 120
PASSWORD = "cli-password-1234"
TAG = uuid.uuid4().hex[:10]
ALICE = f"alice-{TAG}"
EXISTING = f"existing-{TAG}"
KEY_NAME = f"cli-key-{TAG}"
TENANT_KEY_NAME = f"cli-tenant-key-{TAG}"
TENANT = f"acme-{TAG}"


@dataclass(frozen=True)
class Run:
    """What one `mirante` process did."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class CliDatabases:
    migrated: str
    empty: str


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def create_empty_database(server_url: str) -> str:
    name = f"mirante_cli_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def command_environment(urls: StackUrls, database_url: str, data_dir: Path) -> dict[str, str]:
    """The caller's environment without its `MIRANTE_*` settings, plus the servers and database given."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MIRANTE_")}
    env.update(
        MIRANTE_DATABASE_URL=database_url,
        MIRANTE_REDIS_URL=urls.redis_url,
        MIRANTE_MQTT_URL=urls.mqtt_url,
        MIRANTE_DATA_DIR=str(data_dir),
        MIRANTE_ALEMBIC_INI=str(find_alembic_ini()),
    )
    if "MIRANTE_MQTT_PROTOCOL" in os.environ:
        env["MIRANTE_MQTT_PROTOCOL"] = os.environ["MIRANTE_MQTT_PROTOCOL"]
    return env


async def run_mirante(arguments: list[str], env: Mapping[str, str], cwd: Path) -> Run:
    process = await asyncio.create_subprocess_exec(
        str(MIRANTE),
        *arguments,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def databases(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[CliDatabases]:
    """A migrated database (with one user already in it) and an empty one, both only for this module."""
    migrated = await create_test_database(mirante_urls.database_url, prefix="mirante_cli", template=migrated_template)
    empty = await create_empty_database(mirante_urls.database_url)
    engine = create_engine(migrated, DatabaseSettings(pool_size=1, max_overflow=0))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await create_user(session, username=EXISTING, password=PASSWORD)
        yield CliDatabases(migrated=migrated, empty=empty)
    finally:
        await engine.dispose()
        await drop_test_database(mirante_urls.database_url, migrated)
        await drop_test_database(mirante_urls.database_url, empty)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def runs(
    databases: CliDatabases, mirante_urls: StackUrls, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Every command of this module, run concurrently."""
    data_dir = tmp_path_factory.mktemp("mirante-cli-data")
    workdir = tmp_path_factory.mktemp("mirante-cli-cwd")
    on_migrated = command_environment(mirante_urls, databases.migrated, data_dir)
    on_empty = command_environment(mirante_urls, databases.empty, data_dir)
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "migrate": (["migrate"], on_empty),
        "create": (["user", "create", ALICE, "--password", PASSWORD, "--role", "admin"], on_migrated),
        "apikey": (["apikey", "create", "--name", KEY_NAME, "--scope", "things:read", "--scope", "a"], on_migrated),
        "tenant_apikey": (
            ["apikey", "create", "--name", TENANT_KEY_NAME, "--scope", "telemetry:ingest", "--tenant", TENANT],
            on_migrated,
        ),
    }
    results = await asyncio.gather(*(run_mirante(arguments, env, workdir) for arguments, env in commands.values()))
    return dict(zip(commands, results, strict=True))


@pytest_asyncio.fixture(loop_scope="session")
async def app_client(
    databases: CliDatabases, mirante_urls: StackUrls, redis_client: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """An app of the library on the database the commands used (not the run's shared test database)."""
    infra = InfraSettings(
        database=DatabaseSettings(url=databases.migrated, pool_size=2, max_overflow=0),
        redis=RedisSettings(url=mirante_urls.redis_url),
        mqtt=MqttSettings(url=mirante_urls.mqtt_url),
    )
    app: FastAPI = library_app(infra)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client
    finally:
        async for key in redis_client.scan_iter(match=f"mirante:ratelimit*{TAG}*"):
            await redis_client.delete(key)


def assert_one_line_error(run: Run) -> str:
    """The process failed with exit code 2 and a single `error: ...` line, no traceback; returns the line."""
    assert run.code == 2, run
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    assert run.stdout == ""
    return lines[0]


async def test_migrate_prints_the_histories_and_builds_them(runs: dict[str, Run], databases: CliDatabases) -> None:
    run = runs["migrate"]

    assert run.code == 0, run.stderr
    assert run.stdout == f"migrated: {', '.join(installed_histories())}\n"
    engine = create_async_engine(async_url(databases.empty), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            for history in installed_histories():
                version = await connection.scalar(text(f'SELECT version_num FROM "{history}".alembic_version'))
                assert version == ScriptDirectory.from_config(history_config(history)).get_current_head(), history
    finally:
        await engine.dispose()


async def test_user_create_makes_a_user_who_can_log_in(runs: dict[str, Run], app_client: httpx.AsyncClient) -> None:
    run = runs["create"]

    assert run.code == 0, run.stderr
    assert run.stdout == f"created user {ALICE} (role admin)\n"
    login = await app_client.post("/api/v1/auth/login", data={"username": ALICE, "password": PASSWORD})
    assert login.status_code == 200, login.text
    me = await app_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.status_code == 200, me.text
    assert (me.json()["kind"], me.json()["name"], me.json()["role"]) == ("user", ALICE, "admin")


async def test_user_create_stores_the_user_hashed(runs: dict[str, Run], databases: CliDatabases) -> None:
    assert runs["create"].code == 0
    engine = create_async_engine(async_url(databases.migrated), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT role, is_active, password_hash FROM identity.users WHERE username = :name"),
                    {"name": ALICE},
                )
            ).one()
    finally:
        await engine.dispose()

    assert (row.role, row.is_active) == ("admin", True)
    assert PASSWORD not in row.password_hash


async def test_apikey_create_prints_a_key_that_authenticates(
    runs: dict[str, Run], app_client: httpx.AsyncClient
) -> None:
    run = runs["apikey"]

    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1
    key = lines[0].strip()
    assert "shown only once" in run.stderr
    for headers in ({"X-API-Key": key}, {"Authorization": f"Api-Key {key}"}):
        me = await app_client.get("/api/v1/auth/me", headers=headers)
        assert me.status_code == 200, me.text
        body = me.json()
        assert (body["kind"], body["name"], body["role"]) == ("api_key", KEY_NAME, "viewer")
        assert body["scopes"] == ["a", "things:read"]
        assert body["tenant"] is None
    tampered = key[:-1] + ("0" if key[-1] != "0" else "1")
    wrong = await app_client.get("/api/v1/auth/me", headers={"X-API-Key": tampered})
    assert wrong.status_code == 401


async def test_apikey_create_with_a_tenant_binds_the_key_to_it(
    runs: dict[str, Run], app_client: httpx.AsyncClient
) -> None:
    run = runs["tenant_apikey"]

    assert run.code == 0, run.stderr
    me = await app_client.get("/api/v1/auth/me", headers={"X-API-Key": run.stdout.strip()})
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["kind"], body["name"], body["tenant"]) == ("api_key", TENANT_KEY_NAME, TENANT)
    assert body["scopes"] == ["telemetry:ingest"]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`main` configures logging for the process; put the test run's back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        yield
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["user", "create", "mallory", "--password", PASSWORD, "--role", "root"], "invalid choice: 'root'"),
        (["apikey", "create", "--scope", "a"], "the following arguments are required: --name"),
        (["apikey", "create", "--name", "k"], "the following arguments are required: --scope"),
        (["launch"], "invalid choice: 'launch'"),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_arguments_are_argparse_errors(
    arguments: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mirante")
    assert complaint in err


@pytest.fixture
def unreachable_database(monkeypatch: pytest.MonkeyPatch, mirante_urls: StackUrls, tmp_path: Path) -> None:
    """This process's `MIRANTE_*` as a command would see them, with a database URL nothing answers on."""
    unreachable = f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing"
    use_environment(monkeypatch, command_environment(mirante_urls, unreachable, tmp_path))


def use_environment(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Give this process the `MIRANTE_*` variables of `env`, as a command started with it would see them."""
    for name in [name for name in os.environ if name.startswith("MIRANTE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("MIRANTE_"):
            monkeypatch.setenv(name, value)


def in_process(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    """`main(arguments)` in this process: the console script's code path, without its seconds of imports."""
    code = main(arguments)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


@pytest.mark.usefixtures("restored_logging")
async def test_a_duplicate_user_is_a_one_line_error(
    databases: CliDatabases,
    mirante_urls: StackUrls,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_environment(monkeypatch, command_environment(mirante_urls, databases.migrated, tmp_path))
    arguments = ["user", "create", EXISTING.upper(), "--password", PASSWORD]

    line = assert_one_line_error(await asyncio.to_thread(in_process, arguments, capsys))

    assert line == f"error: username {EXISTING!r} is already taken"


@pytest.mark.usefixtures("restored_logging", "unreachable_database")
def test_serve_of_an_unknown_service_lists_the_installed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    line = assert_one_line_error(in_process(["serve", "no-such-service"], capsys))

    assert "unknown service 'no-such-service'" in line
    for spec in discover_services():
        assert spec.name in line


@pytest.mark.usefixtures("restored_logging", "unreachable_database")
def test_an_unreachable_database_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    line = assert_one_line_error(in_process(["user", "create", f"bob-{TAG}", "--password", PASSWORD], capsys))

    assert "Connect call failed" in line or "refused" in line


@pytest.mark.usefixtures("restored_logging", "unreachable_database")
def test_a_short_password_is_refused_before_any_database_work(capsys: pytest.CaptureFixture[str]) -> None:
    line = assert_one_line_error(in_process(["user", "create", "mallory", "--password", "short"], capsys))

    assert "password" in line


@pytest.mark.usefixtures("restored_logging")
async def test_a_database_without_migrations_is_a_one_line_error_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, mirante_urls: StackUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = await create_empty_database(mirante_urls.database_url)
    try:
        use_environment(monkeypatch, command_environment(mirante_urls, bare, tmp_path))
        arguments = ["user", "create", f"carol-{TAG}", "--password", PASSWORD]
        run = await asyncio.to_thread(in_process, arguments, capsys)
    finally:
        await drop_test_database(mirante_urls.database_url, bare)

    line = assert_one_line_error(run)
    assert "mirante migrate" in line
