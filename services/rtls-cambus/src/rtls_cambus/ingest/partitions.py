"""The day partitions of `gateway_readings`: created ahead of time, dropped past the retention.

Each UTC day has its partition `gateway_readings_pYYYYMMDD`; `gateway_readings_default` catches a row of a day
without one, so a write never fails when maintenance is late, and creating that day's partition later moves
those rows into it. A transaction-scoped advisory lock keeps two replicas from doing the maintenance at once.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante import partitions
from rtls_cambus.identifiers import SCHEMA
from rtls_cambus.ingest.models import READINGS_DEFAULT_PARTITION, READINGS_TABLE

_LOCK_KEY: Final = f"{SCHEMA}.{READINGS_TABLE}_partitions"


async def _lock(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _LOCK_KEY})


async def day_partitions(session: AsyncSession) -> dict[date, str]:
    return await partitions.day_partitions(session, SCHEMA, READINGS_TABLE)


async def ensure_partitions(session: AsyncSession, today: date, ahead_days: int) -> list[str]:
    """Create the partitions of `today` and the `ahead_days` days after it that are missing; their names."""
    await _lock(session)
    existing = await day_partitions(session)
    created = []
    for offset in range(ahead_days + 1):
        day = today + timedelta(days=offset)
        if day not in existing:
            name, _ = await partitions.create_day_partition_over_default(
                session, SCHEMA, READINGS_TABLE, day, default=READINGS_DEFAULT_PARTITION, column="received_at"
            )
            created.append(name)
    return created


async def drop_expired(session: AsyncSession, today: date, retention_days: int) -> list[str]:
    """Drop the day partitions wholly older than `retention_days` days before `today`, and the default
    partition's rows of those days; the names dropped."""
    await _lock(session)
    cutoff = today - timedelta(days=retention_days)
    dropped = await partitions.drop_day_partitions_before(session, SCHEMA, READINGS_TABLE, cutoff)
    await session.execute(
        text(f'DELETE FROM "{SCHEMA}".{READINGS_DEFAULT_PARTITION} WHERE received_at < :cutoff'),  # noqa: S608
        {"cutoff": partitions.day_bounds(cutoff)[0]},
    )
    return list(dropped.values())
