"""CSV downloads streamed from a database cursor: the cells, the lines, the row cap and the response.

A service builds its statement and a function turning one row into the cells of one line, then hands both to
`csv_lines` and the result to `csv_download`:

    chunks = stream_chunks(session, statement, chunk_rows=2_000)
    body = csv_lines(COLUMNS, chunks, line_of, max_rows=1_000_000, limit="the export_max_rows setting")
    return csv_download(body, "report.csv", row_limit=1_000_000)

Lines are RFC 4180 (quoted where needed, CRLF ends), UTF-8. Memory stays flat whatever the size: rows are fetched
`chunk_rows` at a time through a server-side cursor. At most `max_rows` lines follow the header; when more rows
match, the file ends with a comment line starting `# truncated:` (and the `X-Export-Row-Limit` header always
states the cap). Text that would start a spreadsheet formula gets a leading `'` (`text_cell`): names and labels
come from people and devices, and a spreadsheet would run them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import Any, Final, TypeVar

from fastapi.responses import StreamingResponse
from sqlalchemy import Executable, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

T = TypeVar("T")

CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
TRUNCATED_PREFIX: Final = "# truncated:"
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_CHUNK_ROWS: Final = 2_000


def text_cell(value: str | None) -> str:
    """`value` as a cell: empty for None, with a leading `'` when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def time_cell(moment: datetime | None) -> str:
    """`moment` in ISO 8601 with a `Z` for UTC (empty for None), as links and CSV files show times."""
    return "" if moment is None else moment.isoformat().replace("+00:00", "Z")


def number_cell(value: float | None) -> str:
    """`value` as its shortest exact decimal form (empty for None)."""
    return "" if value is None else repr(float(value))


def csv_bytes(lines: Iterable[Sequence[Any]]) -> bytes:
    """`lines` as CSV (RFC 4180 quoting, CRLF line ends), UTF-8 encoded."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue().encode()


def truncated_line(max_rows: int, limit: str) -> bytes:
    """The last line of a file cut at `max_rows` rows; `limit` names what sets the cap."""
    return (
        f"{TRUNCATED_PREFIX} the export stopped at {max_rows:,} rows ({limit}); narrow the filters to get the rest\r\n"
    ).encode()


async def stream_chunks(
    executor: AsyncSession | AsyncConnection,
    statement: Executable,
    params: dict[str, Any] | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> AsyncGenerator[Sequence[Row[Any]], None]:
    """The rows of `statement` in chunks of `chunk_rows`, fetched through a server-side cursor.

    Needs an open transaction on `executor` for as long as the iteration runs; the cursor is closed however the
    iteration ends.
    """
    result = await executor.stream(statement.execution_options(yield_per=chunk_rows), params)
    try:
        async for chunk in result.partitions(chunk_rows):
            yield chunk
    finally:
        await result.close()


async def csv_lines(
    columns: Sequence[str],
    chunks: AsyncGenerator[Sequence[T], None],
    line: Callable[[T], Sequence[Any]],
    *,
    max_rows: int,
    limit: str,
) -> AsyncGenerator[bytes, None]:
    """The header line, then one line per item of `chunks` (through `line`), chunk by chunk; past `max_rows`
    items, the `# truncated:` line (see `truncated_line`) and nothing more. `chunks` is closed when this ends."""
    yield csv_bytes([columns])
    written = 0
    async with aclosing(chunks):
        async for chunk in chunks:
            keep = chunk[: max(max_rows - written, 0)]
            if keep:
                yield csv_bytes(line(item) for item in keep)
                written += len(keep)
            if len(keep) < len(chunk):
                yield truncated_line(max_rows, limit)
                break


def csv_download(body: AsyncIterator[bytes], filename: str, *, row_limit: int | None = None) -> StreamingResponse:
    """`body` as a CSV attachment named `filename` (a plain ASCII name the server makes), never cached."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    if row_limit is not None:
        headers["X-Export-Row-Limit"] = str(row_limit)
    return StreamingResponse(body, media_type=CSV_MEDIA_TYPE, headers=headers)


def csv_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` entry of a CSV download route: its 200 is `text/csv`, described by `description`."""
    return {200: {"content": {"text/csv": {}}, "description": description}}
