"""The tenants the write path routes to, cached per process.

Every message names its tenant, and ingest needs the tenant row (schema, retention) for each one; reading the
registry for every batch would add a query to the hot path for data that almost never changes. Found tenants
are kept for `ttl_seconds` (a retention change made elsewhere shows within that time); a slug not in the cache,
or expired, is read from the database at the next batch, so a newly created tenant is found at once. Unknown
slugs are never cached: topics are chosen by publishers, and the cache must not grow with their typos.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.schemas import TENANT_SLUG_PATTERN
from telemetry_ingest.tenancy.models import Tenant

DEFAULT_TTL_SECONDS = 30.0
DEFAULT_MAX_ENTRIES = 10_000

_SLUG = re.compile(TENANT_SLUG_PATTERN)


@dataclass(frozen=True, slots=True)
class _Entry:
    tenant: Tenant
    expires_at: float


class TenantDirectory:
    """Tenant rows by slug, from a per-process cache in front of `telemetry_ingest.tenants`.

    The rows handed out are detached copies: read their attributes, never add them to a session.
    """

    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if ttl_seconds <= 0 or max_entries < 1:
            raise ValueError("ttl_seconds must be positive and max_entries at least 1")
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.lookups = 0
        """Database reads so far (a cache miss costs one per batch, whatever the number of slugs missed)."""
        self._entries: dict[str, _Entry] = {}

    async def resolve(self, session: AsyncSession, slugs: Iterable[str]) -> dict[str, Tenant]:
        """The existing tenants among `slugs`, by slug; the others are simply absent from the answer."""
        now = time.monotonic()
        found: dict[str, Tenant] = {}
        missing: set[str] = set()
        for slug in slugs:
            if slug in found or slug in missing:
                continue
            entry = self._entries.get(slug)
            if entry is not None and entry.expires_at > now:
                found[slug] = entry.tenant
            elif _SLUG.fullmatch(slug):
                missing.add(slug)
        if missing:
            found.update(await self._load(session, missing, now))
        return found

    def forget(self, slug: str | None = None) -> None:
        """Drop `slug` (every tenant when None) so that its next use reads the registry again."""
        if slug is None:
            self._entries.clear()
        else:
            self._entries.pop(slug, None)

    async def _load(self, session: AsyncSession, slugs: set[str], now: float) -> dict[str, Tenant]:
        self.lookups += 1
        rows = await session.execute(
            select(
                Tenant.id,
                Tenant.slug,
                Tenant.name,
                Tenant.schema_name,
                Tenant.retention_days,
                Tenant.created_at,
                Tenant.updated_at,
            ).where(Tenant.slug.in_(sorted(slugs)))
        )
        loaded: dict[str, Tenant] = {}
        for row in rows:
            # A new, transient object: cached rows are shared by every session of the process.
            loaded[row.slug] = Tenant(
                id=row.id,
                slug=row.slug,
                name=row.name,
                schema_name=row.schema_name,
                retention_days=row.retention_days,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        for slug in slugs.difference(loaded):
            self._entries.pop(slug, None)
        if len(self._entries) + len(loaded) > self.max_entries:
            self._evict(now)
        expires_at = now + self.ttl_seconds
        for slug, tenant in loaded.items():
            self._entries[slug] = _Entry(tenant, expires_at)
        return loaded

    def _evict(self, now: float) -> None:
        expired = [slug for slug, entry in self._entries.items() if entry.expires_at <= now]
        for slug in expired:
            del self._entries[slug]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
