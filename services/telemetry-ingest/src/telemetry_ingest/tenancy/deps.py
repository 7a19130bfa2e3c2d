"""Who may reach which tenant, and the tenant-scoped session of `{tenant}` routes.

`TenantScope` is the dependency every `/api/v1/tenants/{tenant}/...` route uses: it loads the tenant, checks the
caller may see it, and puts the tenant's schema on the search path of the request's session for the rest of the
request's transaction.

Rules: staff reach every tenant; any other principal reaches only the tenant of its claim. A non-staff caller
asking for another tenant gets 403 whether or not that tenant exists (existence is not disclosed to it); an
unknown tenant is 404 for callers who could otherwise see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import CurrentPrincipal, Principal
from mirante.db import Session
from mirante.types import Text
from mirante.web.errors import ForbiddenError
from telemetry_ingest.tenancy import service
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.scope import enter_tenant

TenantSlugPath = Annotated[Text, Path(description="tenant slug", max_length=48)]


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


async def tenant_context(tenant: TenantSlugPath, session: Session, principal: CurrentPrincipal) -> TenantContext:
    """The `{tenant}` of the route, once the caller is allowed to see it (403) and it exists (404)."""
    check_tenant_access(principal, tenant)
    row = await service.get_tenant(session, tenant)
    await enter_tenant(session, row)
    return TenantContext(tenant=row, session=session, principal=principal)


TenantScope = Annotated[TenantContext, Depends(tenant_context)]
"""Use as a parameter of `{tenant}` routes: `scope: TenantScope`, then query through `scope.session`."""
