"""Tenant scoping: the search path set per transaction, never left on a pooled connection; `TenantScope` routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import create_engine, create_sessionmaker
from mirante.settings import DatabaseSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from telemetry_ingest.tenancy.deps import TenantScope
from telemetry_ingest.tenancy.naming import InvalidTenantSlugError, schema_for
from telemetry_ingest.tenancy.repository import get_by_slug
from telemetry_ingest.tenancy.scope import enter_tenant, resolve_schema

TenantFactory = Callable[..., Awaitable[str]]

probe = APIRouter()


@probe.get("/api/v1/tenants/{tenant}/scope-probe")
async def scope_probe(scope: TenantScope) -> dict[str, Any]:
    """What a tenant route sees: its tenant and the schema unqualified names resolve to."""
    schema = await scope.session.scalar(text("SELECT current_schema()"))
    return {"tenant": scope.slug, "schema": scope.schema, "current_schema": schema}


async def search_path(session: AsyncSession) -> str:
    return str(await session.scalar(text("SHOW search_path")))


async def test_unqualified_names_mean_the_entered_tenants_tables(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    first, second = await make_tenant(), await make_tenant()

    async with db_session.begin_nested():
        assert await enter_tenant(db_session, first) == schema_for(first)
        await db_session.execute(
            text("INSERT INTO devices (device_id, first_seen, last_seen) VALUES ('boiler-1', now(), now())")
        )
        assert await db_session.scalar(text("SELECT current_schema()")) == schema_for(first)
        assert await db_session.scalar(text("SELECT count(*) FROM tenants WHERE slug = :s"), {"s": first}) == 1

    tenant_row = await get_by_slug(db_session, second)
    assert tenant_row is not None
    await enter_tenant(db_session, tenant_row)
    assert await db_session.scalar(text("SELECT count(*) FROM devices")) == 0
    await enter_tenant(db_session, schema_for(first))
    assert await db_session.scalar(text("SELECT count(*) FROM devices")) == 1


async def test_the_search_path_never_outlives_its_transaction_on_a_pooled_connection(
    database_url: str, make_tenant: TenantFactory
) -> None:
    slug = await make_tenant(committed=True)
    # One pooled connection: every session below gets the very same server backend.
    engine = create_engine(database_url, DatabaseSettings(pool_size=1, max_overflow=0))
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            default_path = await search_path(session)
            backend = await session.scalar(text("SELECT pg_backend_pid()"))

        async with sessions() as session, session.begin():
            await enter_tenant(session, slug)
            assert await search_path(session) == f'"{schema_for(slug)}", "telemetry_ingest"'
        async with sessions() as session, session.begin():
            assert await session.scalar(text("SELECT pg_backend_pid()")) == backend
            assert await search_path(session) == default_path, "after a commit"

        async with sessions() as session:
            await session.begin()
            await enter_tenant(session, slug)
            await session.rollback()
        async with sessions() as session, session.begin():
            assert await search_path(session) == default_path, "after a rollback"

        with pytest.raises(RuntimeError):
            async with sessions() as session, session.begin():
                await enter_tenant(session, slug)
                raise RuntimeError("the request failed")
        async with sessions() as session, session.begin():
            assert await session.scalar(text("SELECT pg_backend_pid()")) == backend
            assert await search_path(session) == default_path, "after a failure"

        # The control: a plain SET does survive on the pooled connection, so the checks above could fail.
        async with sessions() as session, session.begin():
            await session.execute(text("SET search_path TO pg_catalog"))
        async with sessions() as session, session.begin():
            assert await search_path(session) == "pg_catalog"
            await session.execute(text("RESET search_path"))
    finally:
        await engine.dispose()


def test_tenants_are_named_by_row_slug_or_schema() -> None:
    assert resolve_schema("acme") == "tenant_acme"
    assert resolve_schema("north-plant") == "tenant_north-plant"
    assert resolve_schema("tenant_acme") == "tenant_acme"
    for bad in ("Acme", "", "1abc", "acme;drop", "a" * 49):
        with pytest.raises(InvalidTenantSlugError, match="invalid tenant slug"):
            resolve_schema(bad)
    with pytest.raises(ValueError, match="not a tenant schema name"):
        resolve_schema('tenant_x"; SET search_path TO public; --')


async def test_tenant_scope_resolves_checks_access_and_scopes_the_session(
    app: FastAPI, make_client: ClientFactory, make_tenant: TenantFactory, auth_headers: HeadersFactory
) -> None:
    app.include_router(probe)
    client: httpx.AsyncClient = await make_client(app)
    mine, other = await make_tenant(), await make_tenant()
    tenant_user = await auth_headers("viewer", tenant=mine)

    answer = await client.get(f"/api/v1/tenants/{mine}/scope-probe", headers=tenant_user)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"tenant": mine, "schema": schema_for(mine), "current_schema": schema_for(mine)}

    staff = await client.get(f"/api/v1/tenants/{other}/scope-probe", headers=await auth_headers(staff=True))
    assert staff.status_code == 200 and staff.json()["current_schema"] == schema_for(other)

    denied = await client.get(f"/api/v1/tenants/{other}/scope-probe", headers=tenant_user)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    assert mine in denied.json()["error"]["message"]
    hidden = await client.get("/api/v1/tenants/no-such-tenant/scope-probe", headers=tenant_user)
    assert hidden.status_code == 403, "a tenant user learns nothing about other tenants' existence"
    no_claim = await client.get(f"/api/v1/tenants/{mine}/scope-probe", headers=await auth_headers("admin"))
    assert no_claim.status_code == 403

    unknown = await client.get("/api/v1/tenants/no-such-tenant/scope-probe", headers=await auth_headers(staff=True))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "tenant_not_found"
    gone = await client.get("/api/v1/tenants/gone-tenant/scope-probe", headers=await auth_headers(tenant="gone-tenant"))
    assert gone.status_code == 404
    assert (await client.get(f"/api/v1/tenants/{mine}/scope-probe")).status_code == 401
