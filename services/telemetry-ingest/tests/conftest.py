"""Fixtures shared by the telemetry-ingest tests: settings, the app and a client on it, and tenants.

`make_tenant` creates a tenant through the service (row, schema `tenant_<slug>`, tenant migrations, event).
By default it does so in the test's `db_session`, so the tenant, its schema and everything written to it vanish
with the rollback at the end of the test; requests made through `client` share that session and see it.
`committed=True` commits the tenant on a connection of its own instead, for tests whose code runs on other
connections (MQTT workers, a second app, subprocesses); those tenants are dropped when the test run ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Protocol

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.db import create_sessionmaker
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.main import create_app


class TenantFactory(Protocol):
    async def __call__(
        self,
        slug: str | None = None,
        *,
        name: str | None = None,
        retention_days: int | None = None,
        committed: bool = False,
    ) -> str: ...


def unique_slug(prefix: str = "t") -> str:
    """A tenant slug no other test of any run uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    """telemetry-ingest settings on this run's servers and database, background workers off.

    The MQTT subscriber would join the shared subscription of every other run on the broker, retention would
    sweep committed tenants, and the start-up upgrade would race tests that create tenants: tests of those
    workers turn them on in settings of their own.
    """
    return Settings(
        infra=infra_settings, mqtt_ingest_enabled=False, retention_enabled=False, upgrade_tenants_on_start=False
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_client: ClientFactory, app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client on `app` (lifespan running); its requests share the test's `db_session`."""
    return await make_client(app)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def committed_tenant_slugs(db_engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """Slugs of the tenants committed during the run; their rows and schemas are dropped at its end."""
    from telemetry_ingest.tenancy.naming import schema_for
    from telemetry_ingest.tenancy.partitions import forget_partitions

    slugs: list[str] = []
    yield slugs
    async with db_engine.connect() as connection:
        for slug in slugs:
            schema = schema_for(slug)
            forget_partitions(schema)
            try:
                async with connection.begin():
                    # Never hang the end of the run on a connection left open: the database is dropped anyway.
                    await connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                    await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                    await connection.execute(
                        text("DELETE FROM telemetry_ingest.tenants WHERE slug = :slug"), {"slug": slug}
                    )
            except DBAPIError:
                continue


@pytest_asyncio.fixture(loop_scope="session")
async def make_tenant(
    db_session: AsyncSession, db_engine: AsyncEngine, committed_tenant_slugs: list[str]
) -> TenantFactory:
    """`slug = await make_tenant()`: a new tenant with a unique slug (or the given one), ready to use."""
    from telemetry_ingest.tenancy import service

    async def make(
        slug: str | None = None,
        *,
        name: str | None = None,
        retention_days: int | None = None,
        committed: bool = False,
    ) -> str:
        slug = slug or unique_slug()
        label = name or f"Tenant {slug}"
        if not committed:
            await service.create_tenant(db_session, slug=slug, name=label, retention_days=retention_days)
            return slug
        async with create_sessionmaker(db_engine)() as session, session.begin():
            await service.create_tenant(session, slug=slug, name=label, retention_days=retention_days)
        committed_tenant_slugs.append(slug)
        return slug

    return make
