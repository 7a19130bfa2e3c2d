"""Tenant migrations: bring one tenant schema, or every tenant's, to the head of the tenant history.

The revisions live in `tenancy/migrations/versions/`. Alembic is driven here directly (no env.py): a
`MigrationContext` on the caller's connection, with the version table `alembic_version` inside the tenant schema,
and each revision's `upgrade(schema)` called with the schema it changes. Everything runs in the caller's
transaction: a failed upgrade leaves the schema as it was.

Revisions use Alembic's `op`, a module-level proxy bound to one migration at a time. Migrations run in a greenlet
that yields to the event loop at every statement, so two tenants migrated at once in one process (two tenant
creations, or one beside the startup upgrade) would send each other's DDL to the wrong connection: a per-loop
lock lets one migration run at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from telemetry_ingest.tenancy.locks import MIGRATION_NAMESPACE, lock_tenant, lock_upgrade_all
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.naming import check_schema, quoted

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"


_operations = threading.Lock()
LOCK_POLL_SECONDS = 0.01


@asynccontextmanager
async def _one_migration_at_a_time() -> AsyncIterator[None]:
    # A thread lock, since event loops in other threads share `op` too; polled rather than awaited in a worker
    # thread, so that a cancelled waiter never ends up holding it.
    while True:
        if _operations.acquire(blocking=False):
            break
        await asyncio.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        _operations.release()


@dataclass(frozen=True)
class SchemaUpgrade:
    """What upgrading one tenant schema did: its revision before (None: new schema) and after."""

    schema: str
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def script_directory() -> ScriptDirectory:
    """The tenant history (read once per process)."""
    return _load_scripts(MIGRATIONS_DIR)


@cache
def _load_scripts(directory: Path) -> ScriptDirectory:
    return ScriptDirectory(str(directory))


def head_revision() -> str:
    """The newest tenant revision."""
    head = script_directory().get_current_head()
    if head is None:
        raise RuntimeError(f"no tenant migrations found in {MIGRATIONS_DIR}")
    return head


def _context(connection: Connection, schema: str, **opts: Any) -> MigrationContext:
    return MigrationContext.configure(
        connection,
        opts={"version_table": VERSION_TABLE, "version_table_schema": schema, **opts},
    )


def _upgrade_sync(connection: Connection, schema: str) -> SchemaUpgrade:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}"))
    script = script_directory()

    def steps(current: Any, context: MigrationContext) -> Any:
        return script._upgrade_revs("head", current)

    context = _context(connection, schema, fn=steps, script=script)
    before = context.get_current_revision()
    with Operations.context(context):
        context.run_migrations(schema=schema)
    return SchemaUpgrade(schema=schema, before=before, after=context.get_current_revision())


def _revision_sync(connection: Connection, schema: str) -> str | None:
    return _context(connection, schema).get_current_revision()


async def migrate_tenant_schema(connection: AsyncConnection, schema: str) -> SchemaUpgrade:
    """Create `schema` if missing and apply every tenant revision it lacks; says what changed."""
    check_schema(schema)
    await lock_tenant(connection, MIGRATION_NAMESPACE, schema)
    async with _one_migration_at_a_time():
        upgrade = await connection.run_sync(_upgrade_sync, schema)
    if upgrade.changed:
        logger.info("tenant schema %s upgraded from %s to %s", schema, upgrade.before or "nothing", upgrade.after)
    return upgrade


async def upgrade_tenant_schema(connection: AsyncConnection, schema: str) -> None:
    """Create `schema` if missing and bring it to the head of the tenant history (in the caller's transaction)."""
    await migrate_tenant_schema(connection, schema)


async def tenant_schema_revision(connection: AsyncConnection, schema: str) -> str | None:
    """The tenant revision `schema` is at (None when it has none yet)."""
    check_schema(schema)
    exists = await connection.scalar(
        text("SELECT to_regclass(:table) IS NOT NULL"), {"table": f"{quoted(schema)}.{VERSION_TABLE}"}
    )
    if not exists:
        return None
    return await connection.run_sync(_revision_sync, schema)


async def upgrade_tenants(connection: AsyncConnection, schemas: Iterable[str] | None = None) -> list[SchemaUpgrade]:
    """Upgrade the given tenant schemas (default: every registered tenant's) one after the other.

    Holds the upgrade-all lock until the caller's transaction ends, so replicas starting together do not
    migrate side by side: the later ones wait, then find nothing left to do.
    """
    await lock_upgrade_all(connection)
    if schemas is None:
        found = await connection.scalars(select(Tenant.schema_name).order_by(Tenant.slug))
        schemas = list(found)
    return [await migrate_tenant_schema(connection, schema) for schema in schemas]


async def upgrade_all_tenants(connection: AsyncConnection) -> list[str]:
    """Bring every registered tenant's schema to head; returns the schemas, in slug order."""
    return [upgrade.schema for upgrade in await upgrade_tenants(connection)]
