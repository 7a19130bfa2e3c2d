"""The day partitions of `heartbeats`: created ahead of time, dropped past the retention.

Each UTC day has its partition `heartbeats_pYYYYMMDD`; `heartbeats_default` catches a row of a day without one
(so a write never fails when maintenance is late). A partition cannot be created over rows the default already
holds for its day, so those rows are moved into it in the same transaction. A transaction-scoped advisory lock
keeps two replicas from doing the maintenance at once.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.identifiers import SCHEMA

logger = logging.getLogger(__name__)

PARENT: Final = "heartbeats"
DEFAULT_PARTITION: Final = "heartbeats_default"
_DAY_NAME = re.compile(r"^heartbeats_p(\d{8})$")
_LOCK_KEY: Final = f"{SCHEMA}.heartbeat_partitions"


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    """The day a partition's name stands for, or None for a name of another shape (the default partition)."""
    match = _DAY_NAME.fullmatch(name)
    return datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date() if match else None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def _lock(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _LOCK_KEY})


async def day_partitions(session: AsyncSession) -> dict[date, str]:
    """The day partitions that exist, by day."""
    rows = await session.execute(
        text(
            "SELECT child.relname FROM pg_inherits"
            " JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " JOIN pg_class parent ON parent.oid = pg_inherits.inhparent"
            " JOIN pg_namespace ns ON ns.oid = parent.relnamespace"
            " WHERE ns.nspname = :schema AND parent.relname = :parent"
        ),
        {"schema": SCHEMA, "parent": PARENT},
    )
    found: dict[date, str] = {}
    for (name,) in rows:
        day = day_of(name)
        if day is not None:
            found[day] = name
    return found


async def _create(session: AsyncSession, day: date) -> None:
    name = partition_name(day)
    bounds = {"lo": _day_start(day), "hi": _day_start(day + timedelta(days=1))}
    # Identifiers come from constants and a date, never from input (hence S608); bounds are literals in the DDL
    # because DDL takes no parameters.
    lo, hi = (value.isoformat() for value in bounds.values())
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
    await session.execute(
        text(
            f"CREATE TABLE \"{SCHEMA}\".{name} PARTITION OF \"{SCHEMA}\".{PARENT} FOR VALUES FROM ('{lo}') TO ('{hi}')"
        )
    )
    if stranded:
        await session.execute(
            text(f'INSERT INTO "{SCHEMA}".{PARENT} OVERRIDING SYSTEM VALUE SELECT * FROM heartbeats_moving')  # noqa: S608
        )
        await session.execute(text("DROP TABLE heartbeats_moving"))
        logger.info("moved %d heartbeats of %s from the default partition into %s", stranded, day, name)


async def ensure_partitions(session: AsyncSession, today: date, ahead_days: int) -> list[str]:
    """Create the partitions of `today` and the `ahead_days` days after it that are missing; their names."""
    await _lock(session)
    existing = await day_partitions(session)
    created = []
    for offset in range(ahead_days + 1):
        day = today + timedelta(days=offset)
        if day not in existing:
            await _create(session, day)
            created.append(partition_name(day))
    return created


async def drop_expired(session: AsyncSession, today: date, retention_days: int) -> list[str]:
    """Drop the day partitions wholly older than `retention_days` days before `today`, and the default
    partition's rows of those days; the names dropped."""
    await _lock(session)
    cutoff = today - timedelta(days=retention_days)
    dropped = []
    for day, name in sorted((await day_partitions(session)).items()):
        if day < cutoff:
            await session.execute(text(f'DROP TABLE "{SCHEMA}".{name}'))
            dropped.append(name)
    await session.execute(
        text(f'DELETE FROM "{SCHEMA}".{DEFAULT_PARTITION} WHERE received_at < :cutoff'),  # noqa: S608
        {"cutoff": _day_start(cutoff)},
    )
    return dropped
