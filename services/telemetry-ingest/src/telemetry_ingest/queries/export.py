"""CSV exports of a tenant's readings or aggregates, streamed from a server-side cursor.

An export never holds the request's session: the request checks access and parameters and ends its transaction,
then the body is produced on a connection of its own, in a read-only transaction that enters the tenant's
schema, fetching `EXPORT_CHUNK_ROWS` rows at a time, so memory stays flat whatever the size. At most
`export_max_rows` rows are written; when more match, the file ends with the comment line
`# truncated: ...` (and the `X-Export-Row-Limit` header always states the cap).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetry_ingest.queries import repository
from telemetry_ingest.queries.buckets import BucketGrid
from telemetry_ingest.queries.repository import AggregateBucket, Fill, Order, Reading, ReadingFilter
from telemetry_ingest.queries.schemas import ExportKind, iso
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
TRUNCATED_PREFIX = "# truncated:"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def _text(value: str | None) -> str:
    # Spreadsheets run a cell that starts like a formula; ids and units come from devices, so they are defused.
    if value is None:
        return ""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _time(moment: datetime | None) -> str:
    return "" if moment is None else iso(moment)


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def reading_line(reading: Reading) -> list[Any]:
    return [
        _text(reading.device_id),
        _text(reading.sensor),
        _time(reading.ts),
        _number(reading.value),
        _text(reading.unit),
        _time(reading.received_at),
    ]


def bucket_line(bucket: AggregateBucket, grid: BucketGrid) -> list[Any]:
    return [
        _text(bucket.device_id),
        _text(bucket.sensor),
        _time(bucket.bucket),
        _time(bucket.bucket + grid.stride),
        _number(bucket.avg),
        _number(bucket.min),
        _number(bucket.max),
        _number(bucket.last),
        bucket.count,
        _time(bucket.first_ts),
        _time(bucket.last_ts),
        "true" if bucket.filled else "false",
        _text(bucket.unit),
    ]


def csv_bytes(lines: Iterable[Sequence[Any]]) -> bytes:
    """`lines` as CSV (RFC 4180 quoting, CRLF line ends), UTF-8 encoded."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue().encode()


def truncated_line(max_rows: int) -> bytes:
    return (
        f"{TRUNCATED_PREFIX} the export stopped at {max_rows:,} rows (the export_max_rows setting); "
        "narrow the filters to get the rest\r\n"
    ).encode()


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
        yield csv_bytes([plan.columns])
        written = 0
        chunks = repository.stream_rows(connection, statement, params, chunk_rows=chunk_rows)
        async with aclosing(chunks):
            async for chunk in chunks:
                keep = chunk[: max(plan.max_rows - written, 0)]
                if keep:
                    yield csv_bytes(plan.line(row) for row in keep)
                    written += len(keep)
                if len(keep) < len(chunk):
                    yield truncated_line(plan.max_rows)
                    break
