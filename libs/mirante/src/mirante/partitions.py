"""Day partitions of a PostgreSQL table partitioned by range on a timestamptz: one partition per UTC day.

The partition of a day is named `<parent>_pYYYYMMDD` and holds `[day, day + 1)` in UTC. Other children of the
parent (a default partition, say) are never taken for day partitions.

The functions work inside the caller's transaction (an `AsyncConnection` or `AsyncSession`) and take no lock:
a caller creating or dropping partitions holds its own transaction-level advisory lock first, so two replicas
never race over the same day (concurrent `CREATE TABLE IF NOT EXISTS` of one name can still fail).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Executor = AsyncConnection | AsyncSession

_MAX_IDENTIFIER_BYTES: Final = 63
_DAY_SUFFIX_LENGTH: Final = len("_pYYYYMMDD")


def partition_name(parent: str, day: date) -> str:
    """`<parent>_pYYYYMMDD`: the name of the partition of `parent` holding `day` (UTC).

    Raises `ValueError` when the name would be longer than PostgreSQL keeps (it would silently truncate it).
    """
    if len(parent.encode()) + _DAY_SUFFIX_LENGTH > _MAX_IDENTIFIER_BYTES:
        raise ValueError(f"table name {parent!r} is too long for day partitions (at most 53 bytes)")
    return f"{parent}_p{day:%Y%m%d}"


def partition_day(parent: str, name: str) -> date | None:
    """The day a partition of `parent` named `name` holds; None for any other name (a default partition)."""
    digits = name.removeprefix(f"{parent}_p")
    if digits == name or len(digits) != 8 or not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return datetime.strptime(digits, "%Y%m%d").replace(tzinfo=UTC).date()
    except ValueError:
        return None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC range `[day, day + 1)` the partition of `day` holds."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


async def day_partitions(conn: Executor, schema: str, parent: str) -> dict[date, str]:
    """The day partitions of `schema.parent` that exist, by day (oldest first)."""
    rows = await conn.scalars(
        text(
            "SELECT child.relname FROM pg_inherits"
            " JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " JOIN pg_class parent ON parent.oid = pg_inherits.inhparent"
            " JOIN pg_namespace ns ON ns.oid = parent.relnamespace"
            " WHERE ns.nspname = :schema AND parent.relname = :parent"
        ),
        {"schema": schema, "parent": parent},
    )
    found = {day: name for name in rows if (day := partition_day(parent, name)) is not None}
    return dict(sorted(found.items()))


async def create_day_partition(conn: Executor, schema: str, parent: str, day: date) -> str:
    """Create the partition of `day` of `schema.parent` unless it exists; its name.

    A default partition holding rows of `day` makes this fail: moving them is the caller's business.
    """
    name = partition_name(parent, day)
    start, end = day_bounds(day)
    # Bounds are literals in the DDL because DDL takes no parameters; they come from a date, never from input.
    await conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {_quoted(schema)}.{_quoted(name)} "
            f"PARTITION OF {_quoted(schema)}.{_quoted(parent)} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    )
    return name


async def create_day_partition_over_default(
    conn: Executor, schema: str, parent: str, day: date, *, default: str, column: str
) -> tuple[str, int]:
    """Create the partition of `day` of `schema.parent` unless it exists, moving into it the rows of that day the
    default partition `default` caught meanwhile (keyed by `column`); its name and how many rows moved.

    PostgreSQL refuses to create a partition over rows its default already holds, so they are taken out into a
    temporary table and put back through the parent once the partition exists, all in the caller's transaction.
    """
    start, end = day_bounds(day)
    bounds = {"lo": start, "hi": end}
    where = f"{_quoted(column)} >= :lo AND {_quoted(column)} < :hi"
    source = f"{_quoted(schema)}.{_quoted(default)}"
    # Identifiers come from the caller's constants, never from input.
    stranded = int(await conn.scalar(text(f"SELECT count(*) FROM {source} WHERE {where}"), bounds) or 0)  # noqa: S608
    if stranded:
        await conn.execute(
            text(f"CREATE TEMPORARY TABLE mirante_moving ON COMMIT DROP AS SELECT * FROM {source} WHERE {where}"),  # noqa: S608
            bounds,
        )
        await conn.execute(text(f"DELETE FROM {source} WHERE {where}"), bounds)  # noqa: S608
    name = await create_day_partition(conn, schema, parent, day)
    if stranded:
        target = f"{_quoted(schema)}.{_quoted(parent)}"
        await conn.execute(text(f"INSERT INTO {target} OVERRIDING SYSTEM VALUE SELECT * FROM mirante_moving"))  # noqa: S608
        await conn.execute(text("DROP TABLE mirante_moving"))
    return name, stranded


async def drop_day_partitions_before(conn: Executor, schema: str, parent: str, cutoff: date) -> dict[date, str]:
    """Drop the day partitions of `schema.parent` wholly before `cutoff` (UTC), keeping `cutoff`'s own; the
    dropped ones by day, oldest first."""
    doomed = {day: name for day, name in (await day_partitions(conn, schema, parent)).items() if day < cutoff}
    for name in doomed.values():
        await conn.execute(text(f"DROP TABLE {_quoted(schema)}.{_quoted(name)}"))
    return doomed


def _quoted(identifier: str) -> str:
    """`identifier` as a quoted SQL identifier (any `"` doubled)."""
    return '"' + identifier.replace('"', '""') + '"'
