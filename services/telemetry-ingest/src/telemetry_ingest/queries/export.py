"""CSV exports of a tenant's readings or aggregates, streamed from a server-side cursor.

An export never holds the request's session: the request checks access and parameters and ends its transaction,
then the body is produced on a connection of its own, in a read-only transaction that enters the tenant's
schema, fetching `EXPORT_CHUNK_ROWS` rows at a time, so memory stays flat whatever the size. At most
`export_max_rows` rows are written; when more match, the file ends with the comment line
`# truncated: ...` (and the `X-Export-Row-Limit` header always states the cap).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.web.csv_export import csv_lines, number_cell, stream_chunks, text_cell, time_cell
from telemetry_ingest.queries import repository
from telemetry_ingest.queries.buckets import BucketGrid
from telemetry_ingest.queries.repository import AggregateBucket, Fill, Order, Reading, ReadingFilter
from telemetry_ingest.queries.schemas import ExportKind
from telemetry_ingest.tenancy.scope import enter_tenant

EXPORT_CHUNK_ROWS = 2_000

RAW_COLUMNS = ("device_id", "sensor", "ts", "value", "unit", "received_at")
AGGREGATE_COLUMNS = (
    "device_id",
    "sensor",
    "bucket",
    "bucket_end",
    "avg",
    "min",
    "max",
    "last",
    "count",
    "first_ts",
    "last_ts",
    "filled",
    "unit",
)
EXPORT_LIMIT = "the export_max_rows setting"


@dataclass(frozen=True)
class ExportPlan:
    """A checked export: which tenant, what kind, which rows, and the row cap."""

    schema: str
    kind: ExportKind
    filters: ReadingFilter
    max_rows: int
    grid: BucketGrid | None = None
    fill: Fill = "none"
    max_series: int = 1
    order: Order = "desc"

    @property
    def columns(self) -> tuple[str, ...]:
        return RAW_COLUMNS if self.kind == "raw" else AGGREGATE_COLUMNS

    def statement(self) -> tuple[TextClause, dict[str, Any]]:
        """The export's statement, asking for one row more than the cap to tell whether the file is cut."""
        if self.kind == "raw":
            return repository.reading_export_statement(self.filters, max_rows=self.max_rows + 1)
        if self.grid is None:
            raise ValueError("an aggregates export needs its bucket grid")
        return repository.aggregate_export_statement(
            self.filters,
            self.grid,
            fill=self.fill,
            max_series=self.max_series,
            max_rows=self.max_rows + 1,
            order=self.order,
        )

    def line(self, row: Row[Any]) -> list[Any]:
        """One CSV line, in `columns` order."""
        if self.kind == "raw":
            return reading_line(repository.as_reading(row))
        assert self.grid is not None
        return bucket_line(repository.as_bucket(row), self.grid)


def reading_line(reading: Reading) -> list[Any]:
    return [
        text_cell(reading.device_id),
        text_cell(reading.sensor),
        time_cell(reading.ts),
        number_cell(reading.value),
        text_cell(reading.unit),
        time_cell(reading.received_at),
    ]


def bucket_line(bucket: AggregateBucket, grid: BucketGrid) -> list[Any]:
    return [
        text_cell(bucket.device_id),
        text_cell(bucket.sensor),
        time_cell(bucket.bucket),
        time_cell(bucket.bucket + grid.stride),
        number_cell(bucket.avg),
        number_cell(bucket.min),
        number_cell(bucket.max),
        number_cell(bucket.last),
        bucket.count,
        time_cell(bucket.first_ts),
        time_cell(bucket.last_ts),
        "true" if bucket.filled else "false",
        text_cell(bucket.unit),
    ]


async def csv_stream(
    engine: AsyncEngine, plan: ExportPlan, *, chunk_rows: int = EXPORT_CHUNK_ROWS
) -> AsyncGenerator[bytes, None]:
    """The CSV file of `plan`: the header line, then the rows chunk by chunk, then the truncation line if cut.

    The connection is taken when the first chunk is asked for and given back when the iteration ends or is
    abandoned (the client went away), so building the response holds nothing.
    """
    statement, params = plan.statement()
    async with engine.connect() as connection, connection.begin():
        await connection.execute(text("SET TRANSACTION READ ONLY"))
        await enter_tenant(connection, plan.schema)
        await repository.tune_for_analytics(connection)
        chunks = stream_chunks(connection, statement, params, chunk_rows=chunk_rows)
        async with aclosing(
            csv_lines(plan.columns, chunks, plan.line, max_rows=plan.max_rows, limit=EXPORT_LIMIT)
        ) as lines:
            async for piece in lines:
                yield piece
