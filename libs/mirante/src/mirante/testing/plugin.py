"""The `mirante` pytest plugin.

Tests run against real servers: those named by `MIRANTE_DATABASE_URL`, `MIRANTE_REDIS_URL` and
`MIRANTE_MQTT_URL` when set, otherwise embedded ones started for the run. Every run gets a fresh database
with every installed Alembic history applied (a copy of `migrated_template`, which tests needing a database of
their own copy too); `db_session` rolls back after each test. The browser fixtures
(`browser`, `open_page`, `page_problems`, `serve_app`) come from `mirante.testing.browser`; tests using them are
marked `browser` and skipped when Chromium or Playwright is missing. The MQTT ingest fixtures (`mqtt_sessions`,
`mqtt5_broker`, `own_mosquitto`) come from `mirante.testing.mqtt`, `own_redis` (a Redis of a test's own) from
`mirante.testing.streams`, `mail_server` (an SMTP server catching mail) from `mirante.testing.mail`, and
`start_webhook_receiver` (an HTTP receiver checking Standard Webhooks signatures) from `mirante.testing.webhooks`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.passwords import PasswordHasher, ScryptParameters, set_password_hasher
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine
from mirante.devstack import EmbeddedStack, StackUrls
from mirante.mqtt import Publisher
from mirante.settings import DatabaseSettings, InfraSettings, MqttSettings, RedisSettings
from mirante.testing.browser import browser, browser_unavailable, open_page, page_problems, serve_app
from mirante.testing.database import create_test_database, database_name, drop_test_database
from mirante.testing.hangs import DUMP_BEFORE_TIMEOUT_SECONDS, TaskDumpTimer, install_dump_signal
from mirante.testing.mail import mail_server
from mirante.testing.matrix import rolled_back_session, serve_on_session, user_headers
from mirante.testing.mqtt import mqtt5_broker, mqtt_sessions, own_mosquitto
from mirante.testing.streams import own_redis
from mirante.testing.webhooks import start_webhook_receiver

__all__ = [
    "auth_headers",
    "browser",
    "cheap_password_hashing",
    "database_url",
    "db_engine",
    "db_session",
    "infra_settings",
    "mail_server",
    "make_client",
    "migrated_template",
    "mirante_urls",
    "mqtt5_broker",
    "mqtt_publisher",
    "mqtt_sessions",
    "open_page",
    "own_mosquitto",
    "own_redis",
    "page_problems",
    "redis_client",
    "serve_app",
    "start_webhook_receiver",
]

ClientFactory = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]


class HeadersFactory(Protocol):
    async def __call__(
        self, role: str = "viewer", *, staff: bool = False, tenant: str | None = None
    ) -> dict[str, str]: ...


BROWSER_MARKER = "browser: drives headless Chromium (skipped when Chromium or Playwright is missing)"


DUMPS_TASKS = pytest.StashKey[bool]()
TASK_DUMP_TIMER = pytest.StashKey[TaskDumpTimer]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", BROWSER_MARKER)
    config.stash[DUMPS_TASKS] = install_dump_signal()


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """A few seconds before pytest-timeout fails a test, print what its asyncio tasks are waiting on."""
    if item.config.stash.get(DUMPS_TASKS, False) and settings.timeout > 2 * DUMP_BEFORE_TIMEOUT_SECONDS:
        timer = TaskDumpTimer(settings.timeout - DUMP_BEFORE_TIMEOUT_SECONDS)
        item.stash[TASK_DUMP_TIMER] = timer
        timer.start()


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    timer = item.stash.get(TASK_DUMP_TIMER, None)
    if timer is not None:
        timer.cancel()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the browser are marked `browser` (before `-m` selects) and skipped where it cannot run."""
    unavailable = browser_unavailable()
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()) and item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.browser)
        if unavailable is not None and item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.skip(reason=unavailable))


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Production-strength scrypt costs about half a second per hash; tests use a cheap one."""
    previous = set_password_hasher(PasswordHasher(ScryptParameters(n=2**10, r=8, p=1)))
    try:
        yield
    finally:
        set_password_hasher(previous)


@pytest.fixture(scope="session")
def mirante_urls() -> Iterator[StackUrls]:
    """The servers of this run: from the environment, else an embedded stack kept for the whole run."""
    env = {
        "database_url": os.environ.get("MIRANTE_DATABASE_URL"),
        "redis_url": os.environ.get("MIRANTE_REDIS_URL"),
        "mqtt_url": os.environ.get("MIRANTE_MQTT_URL"),
    }
    if all(env.values()):
        yield StackUrls(**{key: str(value) for key, value in env.items()})
        return
    with embedded_stack_dir() as data_dir:
        stack = EmbeddedStack(data_dir)
        urls = stack.start()
        if stack.mqtt_protocol is not None:
            # Every client of this run (settings, subprocesses) must speak the embedded broker's MQTT version.
            os.environ["MIRANTE_MQTT_PROTOCOL"] = stack.mqtt_protocol
        try:
            yield urls
        finally:
            stack.stop()


@contextmanager
def embedded_stack_dir() -> Iterator[Path]:
    """The data folder of a run's embedded stack: `MIRANTE_TEST_DATA_DIR` (a folder in it per pytest-xdist
    worker, each of which runs its own stack), else a `scratch_data_dir()`."""
    given = os.environ.get("MIRANTE_TEST_DATA_DIR")
    if given:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        yield Path(given) / worker if worker else Path(given)
        return
    with scratch_data_dir() as made:
        yield made


@contextmanager
def scratch_data_dir() -> Iterator[Path]:
    """A new folder for embedded servers' data, removed afterwards.

    Not under pytest's temporary root: run as root, the embedded PostgreSQL runs as another system user that
    must reach its data folder, and every pytest session that root starts on the machine sets that root back
    to mode 0700, which took the server's data away in the middle of a run.
    """
    made = Path(tempfile.mkdtemp(prefix="mirante-test-stack-"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated_template(mirante_urls: StackUrls) -> AsyncIterator[str]:
    """Name of a database migrated to head once for this run, never connected to again: every database of the
    run is a copy of it (`create_test_database(server_url, template=migrated_template)`). Dropped afterwards."""
    url = await create_test_database(mirante_urls.database_url, prefix="mirante_template")
    try:
        yield database_name(url)
    finally:
        await drop_test_database(mirante_urls.database_url, url)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    """URL of a database created for this run and migrated to head; dropped afterwards."""
    url = await create_test_database(mirante_urls.database_url, template=migrated_template)
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


@pytest.fixture(scope="session")
def infra_settings(mirante_urls: StackUrls, database_url: str) -> InfraSettings:
    """Infrastructure settings pointing at this run's servers and database."""
    return InfraSettings(
        database=DatabaseSettings(url=database_url, pool_size=5, max_overflow=5),
        redis=RedisSettings(url=mirante_urls.redis_url),
        mqtt=MqttSettings(url=mirante_urls.mqtt_url),
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, DatabaseSettings(pool_size=5, max_overflow=5))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def db_session(db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test (commits become savepoints)."""
    async with rolled_back_session(db_engine) as session:
        yield session


@pytest_asyncio.fixture(loop_scope="session")
async def redis_client(mirante_urls: StackUrls) -> AsyncIterator[Redis]:
    client = Redis.from_url(mirante_urls.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def mqtt_publisher(mirante_urls: StackUrls, infra_settings: InfraSettings) -> AsyncIterator[Publisher]:
    """A connected QoS 1 publisher on this run's broker (`await mqtt_publisher.publish(topic, payload)`)."""
    async with Publisher(mirante_urls.mqtt_url, protocol=infra_settings.mqtt.protocol) as publisher:
        yield publisher


@pytest_asyncio.fixture(loop_scope="session")
async def make_client(db_session: AsyncSession) -> AsyncIterator[ClientFactory]:
    """`await make_client(app)`: an HTTP client on the app with its lifespan running.

    Requests share the test's `db_session`, each inside a savepoint, so what they write is visible to the
    test and rolled back after it.
    """
    async with AsyncExitStack() as stack:

        async def factory(app: FastAPI) -> httpx.AsyncClient:
            return await serve_on_session(stack, app, db_session)

        yield factory


@pytest_asyncio.fixture(loop_scope="session")
async def auth_headers(db_session: AsyncSession, infra_settings: InfraSettings) -> HeadersFactory:
    """`await auth_headers("operator", tenant="acme")`: headers of a new user with that role, in `db_session`."""
    codec = TokenCodec.from_settings(infra_settings.jwt)

    async def make(role: str = "viewer", *, staff: bool = False, tenant: str | None = None) -> dict[str, str]:
        username = f"{role}-{uuid.uuid4().hex[:10]}"
        return await user_headers(db_session, codec, username, role, staff=staff, tenant=tenant)

    return make
