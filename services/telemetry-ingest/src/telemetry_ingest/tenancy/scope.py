"""Tenant scoping of a transaction: the tenant's schema first on the search path, for this transaction only.

`SET LOCAL` (here `set_config(..., is_local => true)`) ends with the transaction, committed or rolled back, so a
pooled connection handed to the next request never carries the previous tenant's search path.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.naming import SCHEMA_PREFIX, check_schema, quoted, schema_for

CENTRAL_SCHEMA = "telemetry_ingest"


def resolve_schema(tenant: Tenant | str) -> str:
    """The schema of `tenant`: a `Tenant` row, a schema name (`tenant_<slug>`) or a slug.

    Slugs never start with `tenant_` (creation refuses them), so a string that does is a schema name.
    """
    if isinstance(tenant, Tenant):
        return check_schema(tenant.schema_name)
    if tenant.startswith(SCHEMA_PREFIX):
        return check_schema(tenant)
    return schema_for(tenant)


async def enter_tenant(session: AsyncSession | AsyncConnection, tenant: Tenant | str) -> str:
    """Put the tenant's schema, then `telemetry_ingest`, on the search path until the current transaction ends.

    Unqualified names (`readings`, `devices`, ...) then mean the tenant's tables. Returns the schema name.
    Raises `ValueError` (`InvalidTenantSlugError`) for a malformed slug or schema name.
    """
    schema = resolve_schema(tenant)
    await session.execute(
        text("SELECT set_config('search_path', :path, true)"),
        {"path": f'{quoted(schema)}, "{CENTRAL_SCHEMA}"'},
    )
    return schema
