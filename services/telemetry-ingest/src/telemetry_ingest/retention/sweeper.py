"""Retention: each tenant keeps `retention_days` of readings; older daily partitions are dropped whole.

A sweep drops, per tenant, the readings partitions holding only days before `today - retention_days` (UTC), and
the rejected readings received before that day. Each tenant is swept in its own short transaction, so one
failing tenant does not hold back the others, and under a lock timeout: dropping a partition needs an exclusive
lock on the tenant's readings table, and waiting behind a long query would stall that tenant's ingest, so the
sweep gives up instead and retries at the next run. Replicas may sweep at the same time: partition drops are
serialised per tenant by the tenancy's advisory lock, and a partition already gone is simply not found.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import delete, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.partitions import day_bounds
from telemetry_ingest.config import Settings
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.partitions import MissingReadingsTableError, drop_partitions_before
from telemetry_ingest.tenancy.repository import all_tenants
from telemetry_ingest.tenancy.tables import in_tenant, rejected_readings

logger = logging.getLogger(__name__)

SessionScope = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""Opens a session inside a transaction that commits when the block ends without error."""


class UnknownTenantError(ValueError):
    """A tenant asked for by slug does not exist."""


@dataclass(frozen=True)
class TenantRetention:
    """What one sweep did to one tenant."""

    slug: str
    retention_days: int
    cutoff: date
    """Readings of the UTC days before this one are gone."""
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rejected: int = 0
    error: str | None = None


def retention_cutoff(now: datetime, retention_days: int) -> date:
    """The first UTC day kept when `retention_days` are kept at `now`: every reading of earlier days is older
    than the retention."""
    return (now.astimezone(UTC) - timedelta(days=retention_days)).date()


def transaction_scope(sessionmaker: async_sessionmaker[AsyncSession]) -> SessionScope:
    """A `SessionScope` on `sessionmaker`: a new session and transaction per block."""

    @asynccontextmanager
    async def scope() -> AsyncIterator[AsyncSession]:
        async with sessionmaker() as session, session.begin():
            yield session

    return scope


async def sweep_tenant(
    session: AsyncSession, tenant: Tenant, *, now: datetime, lock_timeout_seconds: float
) -> TenantRetention:
    """Drop `tenant`'s partitions and rejected readings older than its retention, in the caller's transaction."""
    schema = tenant.schema_name
    cutoff = retention_cutoff(now, tenant.retention_days)
    await session.execute(
        text("SELECT set_config('lock_timeout', :timeout, true)"), {"timeout": f"{int(lock_timeout_seconds * 1000)}ms"}
    )
    dropped = await drop_partitions_before(session, schema, cutoff)
    deleted = await session.execute(
        delete(rejected_readings).where(rejected_readings.c.received_at < day_bounds(cutoff)[0]),
        execution_options=in_tenant(schema),
    )
    return TenantRetention(
        slug=tenant.slug,
        retention_days=tenant.retention_days,
        cutoff=cutoff,
        dropped_partitions=dropped,
        deleted_rejected=int(getattr(deleted, "rowcount", 0) or 0),
    )


async def run_retention(
    session_scope: SessionScope,
    *,
    now: datetime | None = None,
    slugs: Collection[str] | None = None,
    lock_timeout_seconds: float = 5.0,
) -> list[TenantRetention]:
    """Sweep every tenant (or those in `slugs`), each in its own transaction; a tenant that fails is logged and
    reported with its `error`, and the others are still swept. `UnknownTenantError` (nothing swept) when a slug
    names no tenant."""
    now = now or datetime.now(UTC)
    async with session_scope() as session:
        tenants = [tenant for tenant in await all_tenants(session) if slugs is None or tenant.slug in slugs]
    unknown = sorted(set(slugs or ()) - {tenant.slug for tenant in tenants})
    if unknown:
        raise UnknownTenantError(f"no tenant {', '.join(repr(slug) for slug in unknown)}")
    results: list[TenantRetention] = []
    for tenant in tenants:
        try:
            async with session_scope() as session:
                result = await sweep_tenant(session, tenant, now=now, lock_timeout_seconds=lock_timeout_seconds)
        except (SQLAlchemyError, MissingReadingsTableError) as error:
            logger.warning("retention of tenant %s failed, retried at the next run: %s", tenant.slug, error)
            result = TenantRetention(
                slug=tenant.slug,
                retention_days=tenant.retention_days,
                cutoff=retention_cutoff(now, tenant.retention_days),
                error=str(error).splitlines()[0] if str(error) else type(error).__name__,
            )
        else:
            if result.dropped_partitions or result.deleted_rejected:
                logger.info(
                    "tenant %s: retention %d days, dropped %d partition(s) before %s (%s), deleted %d rejected "
                    "reading(s)",
                    tenant.slug,
                    tenant.retention_days,
                    len(result.dropped_partitions),
                    result.cutoff.isoformat(),
                    ", ".join(result.dropped_partitions) or "none",
                    result.deleted_rejected,
                )
        results.append(result)
    return results


class RetentionMetrics:
    """Prometheus counters of the retention sweeps, on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.partitions_dropped = Counter(
            "telemetry_ingest_retention_partitions_dropped",
            "Readings partitions dropped by retention",
            ["tenant"],
            registry=registry,
        )
        self.rejected_deleted = Counter(
            "telemetry_ingest_retention_rejected_deleted",
            "Rejected readings deleted by retention",
            ["tenant"],
            registry=registry,
        )
        self.failures = Counter(
            "telemetry_ingest_retention_failures",
            "Tenant sweeps that failed (retried at the next run)",
            ["tenant"],
            registry=registry,
        )
        self.last_run = Gauge(
            "telemetry_ingest_retention_last_run_timestamp_seconds",
            "When the last retention sweep finished (Unix time)",
            registry=registry,
        )

    def record(self, results: list[TenantRetention]) -> None:
        """Count what a sweep did."""
        for result in results:
            if result.error is not None:
                self.failures.labels(result.slug).inc()
                continue
            if result.dropped_partitions:
                self.partitions_dropped.labels(result.slug).inc(len(result.dropped_partitions))
            if result.deleted_rejected:
                self.rejected_deleted.labels(result.slug).inc(result.deleted_rejected)
        self.last_run.set_to_current_time()


def retention_metrics(app: FastAPI) -> RetentionMetrics:
    """The app's retention metrics, registered once (the worker may be restarted by its supervisor)."""
    metrics: RetentionMetrics | None = getattr(app.state, "retention_metrics", None)
    if metrics is None:
        metrics = RetentionMetrics(app.state.metrics_registry)
        app.state.retention_metrics = metrics
    return metrics


async def retention_worker(app: FastAPI) -> None:
    """Sweep every `retention_interval_seconds`, the first time `retention_initial_delay_seconds` after start."""
    settings: Settings = app.state.settings
    if not settings.retention_enabled:
        return
    metrics = retention_metrics(app)
    scope = transaction_scope(app.state.sessionmaker)
    await asyncio.sleep(settings.retention_initial_delay_seconds)
    while True:
        results = await run_retention(scope, lock_timeout_seconds=settings.retention_lock_timeout_seconds)
        metrics.record(results)
        dropped = sum(len(result.dropped_partitions) for result in results)
        failed = sum(result.error is not None for result in results)
        logger.info("retention sweep: %d tenant(s), %d partition(s) dropped, %d failed", len(results), dropped, failed)
        await asyncio.sleep(settings.retention_interval_seconds)
