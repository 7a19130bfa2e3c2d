"""HTTP endpoints of the tenant registry: `/api/v1/tenants` (create, list) and `/api/v1/tenants/{tenant}`."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mirante.auth.principal import AdminPrincipal, Principal
from mirante.db import Session
from mirante.web.errors import ForbiddenError
from mirante.web.pagination import Page, Pagination
from telemetry_ingest.deps import AppSettings
from telemetry_ingest.tenancy import service
from telemetry_ingest.tenancy.deps import TelemetryReader, TenantAdmin, TenantScope
from telemetry_ingest.tenancy.schemas import TenantCreate, TenantRead, TenantUpdate

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])


def _require_staff_admin(principal: Principal, action: str) -> None:
    if not principal.is_staff:
        raise ForbiddenError(f"{action} is for staff administrators")


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "the slug is taken"}})
async def create_tenant(
    body: TenantCreate, session: Session, principal: AdminPrincipal, settings: AppSettings, response: Response
) -> TenantRead:
    """Create a tenant (staff admins): its schema `tenant_<slug>` is provisioned with every tenant migration and
    `telemetry.tenant.created` is published. 422 for a bad slug, 409 when the slug is taken."""
    _require_staff_admin(principal, "creating tenants")
    tenant = await service.create_tenant(
        session,
        slug=body.slug,
        name=body.name,
        retention_days=body.retention_days or settings.default_retention_days,
    )
    response.headers["Location"] = f"{router.prefix}/{tenant.slug}"
    return TenantRead.of(tenant)


@router.get("")
async def list_tenants(session: Session, principal: TelemetryReader, pagination: Pagination) -> Page[TenantRead]:
    """Tenants by slug: every tenant for staff, only their own for tenant users."""
    tenants, count = await service.list_tenants(session, principal, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([TenantRead.of(tenant) for tenant in tenants], count)


@router.get("/{tenant}")
async def get_tenant(scope: TenantScope) -> TenantRead:
    """One tenant (staff, or users of that tenant)."""
    return TenantRead.of(scope.tenant)


@router.patch("/{tenant}")
async def update_tenant(scope: TenantAdmin, body: TenantUpdate) -> TenantRead:
    """Rename a tenant or change how many days of readings it keeps (staff admins)."""
    _require_staff_admin(scope.principal, "changing tenants")
    tenant = await service.update_tenant(
        scope.session, scope.tenant, name=body.name, retention_days=body.retention_days
    )
    return TenantRead.of(tenant)
