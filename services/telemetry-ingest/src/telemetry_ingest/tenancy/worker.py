"""Startup work of the tenancy: bring every tenant schema to the newest tenant migration."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetry_ingest.config import Settings
from telemetry_ingest.tenancy.migrator import SchemaUpgrade, upgrade_tenants

logger = logging.getLogger(__name__)


async def upgrade_tenant_schemas(engine: AsyncEngine) -> list[SchemaUpgrade]:
    """Upgrade every tenant schema in one committed transaction (replicas take turns on an advisory lock)."""
    async with engine.begin() as connection:
        return await upgrade_tenants(connection)


async def tenant_upgrade_worker(app: FastAPI) -> None:
    """Run once at start (unless `upgrade_tenants_on_start` is off), then return; a failure is retried by the
    app's worker supervisor."""
    settings: Settings = app.state.settings
    if not settings.upgrade_tenants_on_start:
        return
    upgrades = await upgrade_tenant_schemas(app.state.engine)
    changed = [upgrade for upgrade in upgrades if upgrade.changed]
    logger.info("tenant schemas at head: %d, upgraded now: %d", len(upgrades), len(changed))
