"""Tenants: create one (registry row, schema, tenant migrations, event), list, read, change, upgrade all.

Everything runs in the caller's transaction (`flush`, never `commit`): a tenant whose migrations fail leaves
neither a row nor a schema behind, and `telemetry.tenant.created` is published only if the tenant exists.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from mirante.bus import Event, emit
from mirante.web.errors import ForbiddenError
from telemetry_ingest.tenancy import repository
from telemetry_ingest.tenancy.errors import InvalidTenantError, TenantAlreadyExistsError, TenantNotFoundError
from telemetry_ingest.tenancy.migrator import SchemaUpgrade, upgrade_tenant_schema, upgrade_tenants
from telemetry_ingest.tenancy.models import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, NAME_MAX_LENGTH, Tenant
from telemetry_ingest.tenancy.naming import InvalidTenantSlugError, check_new_slug, schema_for

logger = logging.getLogger(__name__)

SCHEMA = "telemetry_ingest"
SOURCE = "mirante/telemetry-ingest"
TENANT_CREATED = "telemetry.tenant.created"


def _checked_slug(slug: str) -> str:
    try:
        return check_new_slug(slug)
    except InvalidTenantSlugError as error:
        raise InvalidTenantError(str(error), details=[{"field": "slug", "message": str(error)}]) from None


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        message = f"the tenant name must have 1 to {NAME_MAX_LENGTH} characters"
        raise InvalidTenantError(message, details=[{"field": "name", "message": message}])
    return name


def _checked_retention(retention_days: int | None) -> int | None:
    if retention_days is not None and not MIN_RETENTION_DAYS <= retention_days <= MAX_RETENTION_DAYS:
        message = f"retention_days must be between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS}, got {retention_days}"
        raise InvalidTenantError(message, details=[{"field": "retention_days", "message": message}])
    return retention_days


def _data(tenant: Tenant) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "schema_name": tenant.schema_name,
        "retention_days": tenant.retention_days,
    }


async def create_tenant(session: AsyncSession, *, slug: str, name: str, retention_days: int | None = None) -> Tenant:
    """Register tenant `slug`, create schema `tenant_<slug>` with every tenant migration, and queue
    `telemetry.tenant.created`. `retention_days` None keeps the table default (365).

    Raises `InvalidTenantError` (422) for a bad slug, name or retention, `TenantAlreadyExistsError` (409) when
    the slug is taken or its schema exists already (left over from a removed tenant: its data is never adopted).
    """
    slug, name, retention_days = _checked_slug(slug), _checked_name(name), _checked_retention(retention_days)
    schema = schema_for(slug)
    if await repository.get_by_slug(session, slug) is not None:
        raise TenantAlreadyExistsError(slug)
    if await repository.schema_exists(session, schema):
        raise TenantAlreadyExistsError(
            slug, f"schema {schema!r} already exists without a tenant; drop or rename it before creating {slug!r}"
        )
    try:
        tenant = await repository.insert_tenant(
            session, slug=slug, name=name, schema_name=schema, retention_days=retention_days
        )
    except repository.TenantExistsError:
        # Created by a concurrent request since the look above.
        raise TenantAlreadyExistsError(slug) from None
    await upgrade_tenant_schema(await session.connection(), schema)
    await emit(
        session,
        SCHEMA,
        Event(source=SOURCE, type=TENANT_CREATED, subject=f"tenant/{slug}", tenant=slug, data=_data(tenant)),
    )
    logger.info("tenant %s created (schema %s)", slug, schema)
    return tenant


async def get_tenant(session: AsyncSession, slug: str) -> Tenant:
    """The tenant `slug`; `TenantNotFoundError` (404) when there is none."""
    tenant = await repository.get_by_slug(session, slug)
    if tenant is None:
        raise TenantNotFoundError(slug)
    return tenant


async def list_tenants(
    session: AsyncSession, principal: Principal, *, offset: int, limit: int
) -> tuple[list[Tenant], int]:
    """Every tenant for staff; only their own for a tenant user. Others (no tenant, not staff) get 403."""
    if principal.is_staff:
        return await repository.list_tenants(session, offset=offset, limit=limit)
    if principal.tenant is None:
        raise ForbiddenError("only staff and tenant users can list tenants")
    return await repository.list_tenants(session, offset=offset, limit=limit, slug=principal.tenant)


async def update_tenant(
    session: AsyncSession, tenant: Tenant, *, name: str | None = None, retention_days: int | None = None
) -> Tenant:
    """Change the name and/or retention of `tenant` (None leaves a field as it is)."""
    if name is not None:
        tenant.name = _checked_name(name)
    if retention_days is not None:
        _checked_retention(retention_days)
        tenant.retention_days = retention_days
    if session.is_modified(tenant):
        await repository.touch(session, tenant)
    return tenant


async def upgrade_all_tenants(session: AsyncSession) -> list[SchemaUpgrade]:
    """Bring every tenant schema to the head of the tenant migrations (waits for a concurrent upgrader)."""
    return await upgrade_tenants(await session.connection())
