"""CSV downloads: defused cells, RFC 4180 lines, the row cap, the cursor read in chunks and closed however the
download ends, and the response's headers."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.csv_export import (
    TRUNCATED_PREFIX,
    csv_bytes,
    csv_download,
    csv_lines,
    number_cell,
    stream_chunks,
    text_cell,
    time_cell,
)


def test_cells_that_would_start_a_formula_are_defused() -> None:
    assert [text_cell(value) for value in ("=1+1", "+1", "-1", "@sum", "\tx", "\rx")] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@sum",
        "'\tx",
        "'\rx",
    ]
    assert text_cell("plain = fine") == "plain = fine" and text_cell(None) == ""


def test_times_are_utc_with_a_z_and_numbers_exact() -> None:
    three_hours_behind = timezone(timedelta(hours=-3))
    assert time_cell(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) == "2026-03-02T09:00:00Z"
    assert time_cell(datetime(2026, 3, 2, 6, 0, tzinfo=three_hours_behind)) == "2026-03-02T06:00:00-03:00"
    assert time_cell(None) == "" and number_cell(None) == ""
    assert number_cell(0.1) == "0.1" and number_cell(3) == "3.0"


def test_lines_are_quoted_as_rfc_4180_says() -> None:
    assert csv_bytes([["a", 'say "hi"', "x,y", "two\nlines", 1]]) == b'a,"say ""hi""","x,y","two\nlines",1\r\n'


async def _chunks(*chunks: Sequence[int]) -> AsyncGenerator[Sequence[int], None]:
    for chunk in chunks:
        yield chunk


async def _collect(body: AsyncGenerator[bytes, None]) -> str:
    return b"".join([piece async for piece in body]).decode()


async def test_lines_follow_the_header_chunk_by_chunk() -> None:
    body = csv_lines(("n", "square"), _chunks([1, 2], [3]), lambda n: [n, n * n], max_rows=10, limit="a cap")
    assert await _collect(body) == "n,square\r\n1,1\r\n2,4\r\n3,9\r\n"


async def test_a_file_past_the_cap_ends_with_the_truncated_line() -> None:
    closed = []

    async def chunks() -> AsyncGenerator[Sequence[int], None]:
        try:
            yield [1, 2]
            yield [3, 4]
            yield [5]
        finally:
            closed.append(True)

    text_body = await _collect(csv_lines(("n",), chunks(), lambda n: [n], max_rows=3, limit="the row_cap setting"))
    lines = text_body.splitlines()
    assert lines[:4] == ["n", "1", "2", "3"]
    assert (
        lines[4]
        == f"{TRUNCATED_PREFIX} the export stopped at 3 rows (the row_cap setting); narrow the filters to get the rest"
    )
    assert len(lines) == 5 and closed == [True], "the rows after the cap are never asked for"

    exact = await _collect(csv_lines(("n",), _chunks([1, 2], [3]), lambda n: [n], max_rows=3, limit="a cap"))
    assert TRUNCATED_PREFIX not in exact


async def test_rows_come_through_a_cursor_in_chunks(db_session: AsyncSession) -> None:
    statement = text("SELECT n, 'v' || n AS label FROM generate_series(1, 5) AS n ORDER BY n")
    chunks = [list(chunk) async for chunk in stream_chunks(db_session, statement, chunk_rows=2)]
    assert [[tuple(row) for row in chunk] for chunk in chunks] == [
        [(1, "v1"), (2, "v2")],
        [(3, "v3"), (4, "v4")],
        [(5, "v5")],
    ]

    abandoned = stream_chunks(db_session, statement, chunk_rows=2)
    await abandoned.__anext__()
    await abandoned.aclose()
    assert await db_session.scalar(text("SELECT 1")) == 1, "the session is usable once the cursor is closed"


async def test_the_download_is_an_attachment_never_cached() -> None:
    response = csv_download(_chunks_of_bytes(b"a\r\n"), "report-2026.csv", row_limit=1000)
    assert response.media_type == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="report-2026.csv"'
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-export-row-limit"] == "1000"
    assert "x-export-row-limit" not in csv_download(_chunks_of_bytes(b""), "a.csv").headers
    rows = list(csv.reader(io.StringIO(csv_bytes([["x", "y"]]).decode(), newline="")))
    assert rows == [["x", "y"]]


async def _chunks_of_bytes(*pieces: bytes) -> AsyncGenerator[bytes, None]:
    for piece in pieces:
        yield piece
