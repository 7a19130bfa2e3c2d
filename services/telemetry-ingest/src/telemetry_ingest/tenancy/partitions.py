"""Daily partitions of a tenant's `readings` table: created on demand before a write, dropped for retention.

Plain PostgreSQL path: `readings` is partitioned by range on `ts`, one partition per UTC day named
`readings_pYYYYMMDD` (FROM that day TO the next, in UTC). TimescaleDB path (the table is a hypertable): chunks
are TimescaleDB's business, so `ensure_partitions` does nothing and `drop_partitions_before` calls `drop_chunks`.

Both functions take a SQLAlchemy `AsyncConnection` or `AsyncSession` and work inside the caller's transaction:
new partitions appear atomically with the rows written into them. DDL on a tenant runs under a per-tenant
transaction-level advisory lock, so two writers never race to create the same partition.

A per-process cache remembers which partitions exist, so the hot path (every day of a batch known) touches
neither the database nor the lock. Only partitions known to be committed enter the cache: one created by a
transaction that is still open (or that rolled back) is looked up again next time instead of being trusted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger, Text

from mirante.partitions import Executor, create_day_partition, day_bounds, drop_day_partitions_before
from telemetry_ingest.tenancy.locks import PARTITION_NAMESPACE, lock_tenant
from telemetry_ingest.tenancy.naming import READINGS, check_schema, partition_name, quoted

PARTITIONED = "p"
HYPERTABLE = "r"

_known: dict[str, set[date]] = {}
"""schema -> days whose partition exists and was committed."""
_created_by: dict[tuple[str, date], int] = {}
"""(schema, day) -> transaction id that created the partition here, until it is known to be committed."""
_storage: dict[str, str] = {}
"""schema -> relkind of its readings table: PARTITIONED or HYPERTABLE."""


class MissingReadingsTableError(LookupError):
    """The schema has no readings table: the tenant does not exist (or its migrations have not run)."""


def forget_partitions(schema: str | None = None) -> None:
    """Drop what this process knows about `schema`'s partitions (every schema's when None).

    For a writer whose insert failed because a partition vanished (dropped by another process): forget, then
    `ensure_partitions` again.
    """
    if schema is None:
        _known.clear()
        _created_by.clear()
        _storage.clear()
        return
    _known.pop(schema, None)
    _storage.pop(schema, None)
    for key in [key for key in _created_by if key[0] == schema]:
        del _created_by[key]


def known_partitions(schema: str) -> frozenset[date]:
    """The days whose partitions this process knows exist (committed)."""
    return frozenset(_known.get(schema, ()))


async def ensure_partitions(conn: Executor, schema: str, days: Iterable[date]) -> list[str]:
    """Make sure a readings partition exists for each UTC day in `days`; returns the names created now.

    Call it in the writing transaction, before inserting, with the UTC dates of the batch. Costs nothing when
    every partition is already known to this process. Raises `MissingReadingsTableError` for a schema without a
    readings table and `ValueError` for a malformed schema name.
    """
    known = _known.get(schema)
    wanted = days if isinstance(days, set | frozenset) else set(days)
    if (known is not None and known.issuperset(wanted)) or not wanted:
        return []
    if await _storage_of(conn, schema) == HYPERTABLE:
        _known.setdefault(schema, set()).update(wanted)
        return []
    missing = sorted(wanted - (known or set()))
    await lock_tenant(conn, PARTITION_NAMESPACE, schema)
    existing = await _existing(conn, schema, [partition_name(day) for day in missing])
    statuses = await _creator_statuses(
        conn, {_created_by[schema, day] for day in missing if (schema, day) in _created_by}
    )
    created: list[str] = []
    txid: int | None = None
    for day in missing:
        name = partition_name(day)
        creator = _created_by.get((schema, day))
        if name in existing:
            if creator is None or statuses.get(creator) != "in progress":
                _created_by.pop((schema, day), None)
                _known.setdefault(schema, set()).add(day)
            continue
        await create_day_partition(conn, schema, READINGS, day)
        if txid is None:
            txid = int(await conn.scalar(text("SELECT pg_current_xact_id()::text")) or 0)
        _created_by[schema, day] = txid
        created.append(name)
    return created


async def drop_partitions_before(conn: Executor, schema: str, cutoff: date) -> list[str]:
    """Drop the readings partitions that hold only days before `cutoff` (UTC); returns their names, oldest first.

    On the TimescaleDB path, drops the chunks older than `cutoff` with `drop_chunks` and returns theirs.
    """
    check_schema(schema)
    cutoff_start = day_bounds(cutoff)[0]
    if await _storage_of(conn, schema) == HYPERTABLE:
        chunks = await conn.scalars(
            text("SELECT drop_chunks(CAST(:rel AS regclass), older_than => CAST(:cutoff AS timestamptz))"),
            {"rel": f"{quoted(schema)}.{READINGS}", "cutoff": cutoff_start},
        )
        return sorted(str(name) for name in chunks)
    await lock_tenant(conn, PARTITION_NAMESPACE, schema)
    dropped = await drop_day_partitions_before(conn, schema, READINGS, cutoff)
    for day in dropped:
        # Forgotten at once: if this transaction rolls back, the next write merely looks the partition up again.
        _known.get(schema, set()).discard(day)
        _created_by.pop((schema, day), None)
    return list(dropped.values())


async def _storage_of(conn: Executor, schema: str) -> str:
    storage = _storage.get(schema)
    if storage is not None:
        return storage
    check_schema(schema)
    kind = await conn.scalar(
        text(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = :table"
        ),
        {"schema": schema, "table": READINGS},
    )
    if kind not in (PARTITIONED, HYPERTABLE):
        raise MissingReadingsTableError(f"schema {schema!r} has no readings table")
    _storage[schema] = str(kind)
    return str(kind)


async def _existing(conn: Executor, schema: str, names: list[str]) -> set[str]:
    rows = await conn.scalars(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = ANY(:names)"
        ).bindparams(bindparam("names", type_=ARRAY(Text))),
        {"schema": schema, "names": names},
    )
    return set(rows)


async def _creator_statuses(conn: Executor, txids: set[int]) -> dict[int, str | None]:
    """`pg_xact_status` of the transactions that created partitions here: committed, aborted or in progress."""
    if not txids:
        return {}
    rows = await conn.execute(
        text("SELECT t, pg_xact_status(t::text::xid8) FROM unnest(:txids) AS t").bindparams(
            bindparam("txids", type_=ARRAY(BigInteger))
        ),
        {"txids": sorted(txids)},
    )
    return {int(txid): status for txid, status in rows}
