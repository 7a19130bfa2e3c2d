"""Queries of the tenant registry (schema `telemetry_ingest`)."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from telemetry_ingest.tenancy.models import Tenant


class TenantExistsError(Exception):
    """Inserting a tenant violated the unique slug (or schema name)."""


async def insert_tenant(
    session: AsyncSession, *, slug: str, name: str, schema_name: str, retention_days: int | None
) -> Tenant:
    """Insert a tenant row; `TenantExistsError` when the slug is taken (the caller's transaction stays usable:
    the insert runs in a savepoint)."""
    tenant = Tenant(slug=slug, name=name, schema_name=schema_name)
    if retention_days is not None:
        tenant.retention_days = retention_days
    try:
        async with session.begin_nested():
            session.add(tenant)
            await session.flush()
    except IntegrityError as error:
        if "uq_tenants_slug" in str(error.orig) or "uq_tenants_schema_name" in str(error.orig):
            raise TenantExistsError() from None
        raise
    await session.refresh(tenant)
    return tenant


async def get_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def list_tenants(
    session: AsyncSession, *, offset: int, limit: int, slug: str | None = None
) -> tuple[list[Tenant], int]:
    """Tenants by slug, with the total count (only the tenant `slug` when given)."""
    query = select(Tenant).order_by(Tenant.slug)
    if slug is not None:
        query = query.where(Tenant.slug == slug)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def schema_exists(session: AsyncSession, schema: str) -> bool:
    return bool(
        await session.scalar(
            text("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :schema)"), {"schema": schema}
        )
    )


async def touch(session: AsyncSession, tenant: Tenant) -> None:
    """Stamp `updated_at` with the transaction's time and write pending changes."""
    tenant.updated_at = func.now()
    await session.flush()
    await session.refresh(tenant, ["updated_at"])


async def all_tenants(session: AsyncSession) -> list[Tenant]:
    """Every tenant, by slug."""
    return list(await session.scalars(select(Tenant).order_by(Tenant.slug)))
