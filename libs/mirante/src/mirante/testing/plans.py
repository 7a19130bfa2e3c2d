"""Test helpers for PostgreSQL's plans: the plan a statement would get, and how it reads a table.

A test of a statement's plan under statistics older than a burst of rows ANALYZEs the table, inserts the burst and
asks for the plan, all in one transaction that it rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ClauseElement
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@dataclass(frozen=True)
class Scan:
    """One read of a table: through which index (None: the table itself) and on what condition (None: all of it)."""

    index: str | None
    condition: str | None


@asynccontextmanager
async def rolled_back(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction rolled back at the end: the rows, and the statistics, a plan test makes are
    gone after it."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


async def plan_of(connection: AsyncConnection, statement: ClauseElement) -> dict[str, Any]:
    """The plan PostgreSQL chooses for `statement`, its parameters written in as values (as a prepared statement's
    custom plan sees them)."""
    sql = statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    document = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}")
    return dict(document.scalar_one()[0]["Plan"])


def scans_of(plan: dict[str, Any], table: str) -> list[Scan]:
    """Every read of `table` in `plan`, in the plan's order; a bitmap scan is told by its index scans."""
    return list(_scans(plan, table))


def _scans(node: dict[str, Any], table: str) -> Iterator[Scan]:
    bitmap = node["Node Type"] == "Bitmap Heap Scan"
    if node.get("Relation Name") == table and "Scan" in node["Node Type"]:
        if bitmap:
            yield from _bitmap_index_scans(_bitmap_of(node))
        else:
            yield Scan(node.get("Index Name"), node.get("Index Cond"))
    for child in node.get("Plans", ()):
        if not (bitmap and child is _bitmap_of(node)):
            yield from _scans(child, table)


def _bitmap_of(node: dict[str, Any]) -> dict[str, Any]:
    """The bitmap a Bitmap Heap Scan reads (its other children are sub-plans)."""
    return next(child for child in node["Plans"] if child.get("Parent Relationship") == "Outer")


def _bitmap_index_scans(node: dict[str, Any]) -> Iterator[Scan]:
    if node["Node Type"] == "Bitmap Index Scan":
        yield Scan(node["Index Name"], node.get("Index Cond"))
    for child in node.get("Plans", ()):
        yield from _bitmap_index_scans(child)
