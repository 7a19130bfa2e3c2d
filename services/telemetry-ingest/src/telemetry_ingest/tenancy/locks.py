"""Advisory locks of the tenancy: taken per transaction, so they can never outlive the work they guard.

Tenant-level locks use PostgreSQL's two-key form `(namespace, hashtext(schema))`; a hash collision between two
tenants only makes them wait for each other, never lets two workers into the same tenant's critical section.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

UPGRADE_ALL_LOCK = 7_243_000
"""Held while every tenant schema is upgraded: replicas starting together take turns."""

MIGRATION_NAMESPACE = 7_243_001
"""With the schema's hash: one migrator per tenant schema."""

PARTITION_NAMESPACE = 7_243_002
"""With the schema's hash: one creator or dropper of readings partitions per tenant schema."""


async def lock_upgrade_all(connection: AsyncConnection | AsyncSession) -> None:
    """Wait for, then hold until the end of the transaction, the lock of `upgrade_all_tenants`."""
    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_ALL_LOCK})


async def lock_tenant(connection: AsyncConnection | AsyncSession, namespace: int, schema: str) -> None:
    """Wait for, then hold until the end of the transaction, the `namespace` lock of one tenant schema."""
    await connection.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:schema))"), {"namespace": namespace, "schema": schema}
    )
