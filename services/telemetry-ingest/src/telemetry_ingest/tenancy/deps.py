"""Who may reach which tenant, and the tenant-scoped session of `{tenant}` routes.

`TenantScope` (reads), `TenantOperator` and `TenantAdmin` (changes) are the dependencies of every
`/api/v1/tenants/{tenant}/...` route: each checks the caller may act on the tenant, loads the tenant, and puts
its schema on the search path of the request's session for the rest of the request's transaction.

Rules: staff reach every tenant; any other principal reaches only the tenant of its claim. A non-staff caller
asking for another tenant gets 403 whether or not that tenant exists (existence is not disclosed to it); an
unknown tenant is 404 for callers who could otherwise see it. Viewers read, operators also change devices,
sensors and threshold rules, admins also manage device credentials. An API key also needs the scope
`telemetry:read` to read and `telemetry:write` to change (or `*`): the EMQX key of `POST /ingest`, with
`telemetry:ingest` alone, reads and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Path
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import CurrentPrincipal, Principal, check_role, check_scope
from mirante.auth.roles import Role
from mirante.db import Session
from mirante.types import Text
from mirante.web.errors import ForbiddenError
from telemetry_ingest.tenancy import service
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.scope import enter_tenant

TenantSlugPath = Annotated[Text, Path(description="tenant slug", max_length=48)]

READ_SCOPE: Final = "telemetry:read"
"""The scope an API key needs to read a tenant's data (and the tenant list); `*` includes it."""
WRITE_SCOPE: Final = "telemetry:write"
"""The scope an API key needs, besides its role, to change a tenant's devices, sensors, rules and credentials."""


def check_tenant_access(principal: Principal, slug: str) -> None:
    """403 unless `principal` is staff or carries the tenant claim `slug`."""
    if principal.is_staff:
        return
    if principal.tenant is None:
        raise ForbiddenError("this resource belongs to a tenant: your account is neither staff nor a tenant's")
    if principal.tenant != slug:
        raise ForbiddenError(f"your account belongs to tenant {principal.tenant!r}, not {slug!r}")


@dataclass(frozen=True)
class TenantContext:
    """The tenant of a request, its caller, and the request's session already scoped to the tenant's schema."""

    tenant: Tenant
    session: AsyncSession
    principal: Principal

    @property
    def slug(self) -> str:
        return self.tenant.slug

    @property
    def schema(self) -> str:
        return self.tenant.schema_name


async def _entered(tenant: str, session: AsyncSession, principal: Principal) -> TenantContext:
    row = await service.get_tenant(session, tenant)
    await enter_tenant(session, row)
    return TenantContext(tenant=row, session=session, principal=principal)


async def tenant_context(tenant: TenantSlugPath, session: Session, principal: CurrentPrincipal) -> TenantContext:
    """The `{tenant}` of a route that reads, once the caller may see it (403: another tenant, or an API key
    without `telemetry:read`) and it exists (404)."""
    check_tenant_access(principal, tenant)
    check_scope(principal, READ_SCOPE)
    return await _entered(tenant, session, principal)


async def tenant_operator_context(
    tenant: TenantSlugPath, session: Session, principal: CurrentPrincipal
) -> TenantContext:
    """The `{tenant}` of a route that changes it, for operators (and API keys with `telemetry:write`)."""
    check_tenant_access(principal, tenant)
    check_role(principal, Role.operator)
    check_scope(principal, WRITE_SCOPE)
    return await _entered(tenant, session, principal)


async def tenant_admin_context(tenant: TenantSlugPath, session: Session, principal: CurrentPrincipal) -> TenantContext:
    """The `{tenant}` of a route that manages it, for admins (and API keys with `telemetry:write`)."""
    check_tenant_access(principal, tenant)
    check_role(principal, Role.admin)
    check_scope(principal, WRITE_SCOPE)
    return await _entered(tenant, session, principal)


async def telemetry_reader(principal: CurrentPrincipal) -> Principal:
    """A caller that may read telemetry data at all: users, and API keys with `telemetry:read`."""
    check_scope(principal, READ_SCOPE)
    return principal


TenantScope = Annotated[TenantContext, Depends(tenant_context)]
"""Use as a parameter of `{tenant}` routes that read: `scope: TenantScope`, then query through `scope.session`."""
TenantOperator = Annotated[TenantContext, Depends(tenant_operator_context)]
"""`TenantScope` for the routes that change a tenant's devices, sensors and threshold rules."""
TenantAdmin = Annotated[TenantContext, Depends(tenant_admin_context)]
"""`TenantScope` for the routes that manage a tenant (device credentials, the tenant itself)."""
TelemetryReader = Annotated[Principal, Depends(telemetry_reader)]
