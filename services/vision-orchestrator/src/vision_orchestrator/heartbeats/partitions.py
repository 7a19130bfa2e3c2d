"""The day partitions of `heartbeats`: created ahead of time, dropped past the retention.

Each UTC day has its partition `heartbeats_pYYYYMMDD`; `heartbeats_default` catches a row of a day without one
(so a write never fails when maintenance is late). A partition cannot be created over rows the default already
holds for its day, so those rows are moved into it in the same transaction. A transaction-scoped advisory lock
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
    lo, hi = partitions.day_bounds(day)
    bounds = {"lo": lo, "hi": hi}
    # Identifiers come from constants, never from input (hence S608).
    stranded = await session.scalar(
        text(f'SELECT count(*) FROM "{SCHEMA}".{DEFAULT_PARTITION} WHERE received_at >= :lo AND received_at < :hi'),  # noqa: S608
        bounds,
    )
    if stranded:
        await session.execute(
            text(
                "CREATE TEMPORARY TABLE heartbeats_moving ON COMMIT DROP AS SELECT * FROM"  # noqa: S608
                f' "{SCHEMA}".{DEFAULT_PARTITION} WHERE received_at >= :lo AND received_at < :hi'
            ),
            bounds,
        )
        await session.execute(
            text(f'DELETE FROM "{SCHEMA}".{DEFAULT_PARTITION} WHERE received_at >= :lo AND received_at < :hi'),  # noqa: S608
            bounds,
        )
    name = await partitions.create_day_partition(session, SCHEMA, PARENT, day)
    if stranded:
        await session.execute(
            text(f'INSERT INTO "{SCHEMA}".{PARENT} OVERRIDING SYSTEM VALUE SELECT * FROM heartbeats_moving')  # noqa: S608
        )
        await session.execute(text("DROP TABLE heartbeats_moving"))
        logger.info("moved %d heartbeats of %s from the default partition into %s", stranded, day, name)
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
