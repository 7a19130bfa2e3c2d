"""The day partitions of `heartbeats`: created ahead of time, dropped past the retention.

Each UTC day has its partition `heartbeats_pYYYYMMDD`; `heartbeats_default` catches a row of a day without one
(so a write never fails when maintenance is late); creating a day's partition moves the default's rows of that day
into it (`mirante.partitions.create_day_partition_over_default`). A transaction-scoped advisory lock
keeps two replicas from doing the maintenance at once.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante import partitions
from vision_orchestrator.identifiers import SCHEMA

logger = logging.getLogger(__name__)

PARENT: Final = "heartbeats"
DEFAULT_PARTITION: Final = "heartbeats_default"
_LOCK_KEY: Final = f"{SCHEMA}.heartbeat_partitions"


async def _lock(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _LOCK_KEY})


async def day_partitions(session: AsyncSession) -> dict[date, str]:
    """The day partitions that exist, by day."""
    return await partitions.day_partitions(session, SCHEMA, PARENT)


async def _create(session: AsyncSession, day: date) -> str:
    name, moved = await partitions.create_day_partition_over_default(
        session, SCHEMA, PARENT, day, default=DEFAULT_PARTITION, column="received_at"
    )
    if moved:
        logger.info("moved %d heartbeats of %s from the default partition into %s", moved, day, name)
    return name


async def ensure_partitions(session: AsyncSession, today: date, ahead_days: int) -> list[str]:
    """Create the partitions of `today` and the `ahead_days` days after it that are missing; their names."""
    await _lock(session)
    existing = await day_partitions(session)
    created = []
    for offset in range(ahead_days + 1):
        day = today + timedelta(days=offset)
        if day not in existing:
            created.append(await _create(session, day))
    return created


async def drop_expired(session: AsyncSession, today: date, retention_days: int) -> list[str]:
    """Drop the day partitions wholly older than `retention_days` days before `today`, and the default
    partition's rows of those days; the names dropped."""
    await _lock(session)
    cutoff = today - timedelta(days=retention_days)
    dropped = await partitions.drop_day_partitions_before(session, SCHEMA, PARENT, cutoff)
    await session.execute(
        text(f'DELETE FROM "{SCHEMA}".{DEFAULT_PARTITION} WHERE received_at < :cutoff'),  # noqa: S608
        {"cutoff": partitions.day_bounds(cutoff)[0]},
    )
    return list(dropped.values())
