"""CSV export of the job list: same filters and sort as the list, streamed from a cursor, safe quoting."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cvat_sync.config import Settings
from cvat_sync.cvat.payloads import AnnotationCounts, CvatJob
from cvat_sync.jobs import queries
from cvat_sync.jobs.models import Job
from cvat_sync.jobs.queries import JobFilters
from cvat_sync.jobs.schemas import CSV_COLUMNS
from cvat_sync.jobs.service import Incoming, JobMirror
from cvat_sync.main import create_app
from mirante.auth.commands import create_user
from mirante.auth.models import User
from mirante.auth.tokens import TokenCodec
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory

LINK_BASE = "https://cvat.example.com"
EXPORT = "/api/v1/jobs/export.csv"
DAY = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def raw_job(
    job_id: int,
    *,
    task_name: str,
    project: tuple[int, str] | None = (7, "Street scenes"),
    assignee: str | None = "alice",
    stage: str = "annotation",
    state: str = "in progress",
    updated: datetime = DAY,
) -> dict[str, Any]:
    """A job as CVAT's `GET /api/jobs` lists it."""
    return {
        "url": f"http://cvat.test/api/jobs/{job_id}",
        "id": job_id,
        "task_id": 1000 + job_id,
        "task_name": task_name,
        "project_id": project[0] if project else None,
        "project_name": project[1] if project else None,
        "assignee": {"id": 3, "username": assignee} if assignee else None,
        "stage": stage,
        "state": state,
        "frame_count": 20,
        "created_date": "2025-02-01T08:00:00Z",
        "updated_date": updated.isoformat().replace("+00:00", "Z"),
        "type": "annotation",
    }


def incoming(raw: dict[str, Any], manual: int = 0, interpolated: int = 0) -> Incoming:
    return Incoming(CvatJob.parse(raw), raw, AnnotationCounts(manual, interpolated))


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.fixture
async def mirror(db_session: AsyncSession) -> JobMirror:
    await db_session.execute(delete(Job))  # an empty mirror for this test only: it is rolled back afterwards
    return JobMirror(db_session, source="sync")


@pytest.fixture
async def jobs(mirror: JobMirror) -> None:
    await mirror.apply(
        [
            incoming(raw_job(1, task_name='street, "north" side', updated=DAY + timedelta(days=1)), 3, 1),
            incoming(
                raw_job(2, task_name='=HYPERLINK("http://evil")', assignee=None, stage="acceptance", state="completed"),
                5,
            ),
            incoming(raw_job(3, task_name="no project\nsecond line", project=None, updated=DAY + timedelta(days=2))),
            incoming(raw_job(4, task_name="gone", updated=DAY + timedelta(days=3))),
        ]
    )
    assert await mirror.mark_deleted(list((await mirror.stored([4])).values())) == 1


@pytest.fixture
async def client(make_client: ClientFactory, infra_settings: InfraSettings) -> httpx.AsyncClient:
    return await make_client(create_app(Settings(infra=infra_settings, cvat_public_url=LINK_BASE)))


@pytest.fixture
async def viewer(auth_headers: HeadersFactory) -> dict[str, str]:
    return await auth_headers("viewer")


async def export(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[list[str]]:
    response = await client.get(EXPORT, params=params, headers=headers)
    assert response.status_code == 200, response.text
    rows = parse(response.text)
    assert tuple(rows[0]) == CSV_COLUMNS
    return rows[1:]


async def test_export_is_a_csv_download_with_every_column(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: None
) -> None:
    response = await client.get(EXPORT, headers=viewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="cvat-jobs-\d{8}T\d{6}Z\.csv"', disposition), disposition
    assert response.headers["x-export-row-limit"] == "1000000"

    rows = parse(response.text)
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [row["id"] for row in body] == ["3", "1", "2"], "newest first, deleted jobs left out"
    first = body[1]
    assert first == {
        "id": "1",
        "task_id": "1001",
        "task_name": 'street, "north" side',
        "project_id": "7",
        "project_name": "Street scenes",
        "assignee": "alice",
        "status": "annotation",
        "stage": "annotation",
        "state": "in progress",
        "job_type": "annotation",
        "frame_count": "20",
        "manual_annotations": "3",
        "interpolated_annotations": "1",
        "total_annotations": "4",
        "cvat_updated_at": "2025-03-02T12:00:00+00:00",
        "last_synced_at": first["last_synced_at"],
        "deleted": "false",
        "cvat_link": f"{LINK_BASE}/tasks/1001/jobs/1",
    }
    assert datetime.fromisoformat(first["last_synced_at"]) > DAY
    assert body[0]["task_name"] == "no project\nsecond line", "newlines survive inside a quoted cell"
    assert (body[0]["project_id"], body[0]["project_name"]) == ("", "")
    assert body[2]["assignee"] == ""
    assert body[2]["task_name"] == '\'=HYPERLINK("http://evil")', "formula-like cells are defused"
    assert '"street, ""north"" side"' in response.text, "RFC 4180 quoting"


async def test_export_honours_filters_and_sort(client: httpx.AsyncClient, viewer: dict[str, str], jobs: None) -> None:
    assert [row[0] for row in await export(client, viewer, status="completed")] == ["2"]
    assert [row[0] for row in await export(client, viewer, sort="id")] == ["1", "2", "3"]
    assert [row[0] for row in await export(client, viewer, assigned="false")] == ["2"]
    assert [row[0] for row in await export(client, viewer, q="north")] == ["1"]
    assert [row[0] for row in await export(client, viewer, updated_from="2025-03-02T00:00:00Z")] == ["3", "1"]
    with_deleted = await export(client, viewer, include_deleted="true", sort="-id")
    assert [(row[0], row[16]) for row in with_deleted] == [
        ("4", "true"),
        ("3", "false"),
        ("2", "false"),
        ("1", "false"),
    ]
    assert await export(client, viewer, q="nothing-like-this") == []


async def test_export_refuses_anonymous_and_bad_filters(client: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    assert (await client.get(EXPORT)).status_code == 401
    response = await client.get(EXPORT, params={"status": "done"}, headers=viewer)
    assert response.status_code == 422
    assert "status" in response.json()["error"]["message"]
    assert (await client.get(EXPORT, params={"sort": "raw"}, headers=viewer)).status_code == 422


async def asgi_body_messages(app: FastAPI, path: str, query: str, headers: dict[str, str]) -> list[bytes]:
    """The body messages the app sends for a GET, one per chunk (an HTTP client would join them)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    messages: list[MutableMapping[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the response ends
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    assert messages[0]["status"] == 200, messages
    return [message["body"] for message in messages[1:] if message.get("body")]


async def test_many_rows_stream_in_chunks(
    make_client: ClientFactory, infra_settings: InfraSettings, viewer: dict[str, str], mirror: JobMirror
) -> None:
    total = 2_500
    for start in range(0, total, 500):
        batch = [
            incoming(raw_job(job_id, task_name=f"bulk-{job_id:05d}", updated=DAY + timedelta(seconds=job_id)), 1)
            for job_id in range(start + 1, start + 501)
        ]
        await mirror.apply(batch)
    app = create_app(Settings(infra=infra_settings, cvat_public_url=LINK_BASE))
    await make_client(app)  # runs the lifespan and shares the test's session with the app
    chunks = await asgi_body_messages(app, EXPORT, "sort=id", viewer)
    # The header line, then one chunk per cursor batch of 1,000 rows: the body is never built whole.
    assert len(chunks) == 4, [len(chunk) for chunk in chunks]
    rows = parse(b"".join(chunks).decode())
    assert len(rows) == total + 1
    assert [row[0] for row in rows[1:]] == [str(job_id) for job_id in range(1, total + 1)]
    assert [len(parse(chunk.decode())) for chunk in chunks] == [1, 1000, 1000, 500]


async def test_stream_reads_batches_and_stops_at_the_cap(db_session: AsyncSession, jobs: None) -> None:
    filters = JobFilters(include_deleted=True)
    batches = [
        [job.id for job in batch] async for batch in queries.stream_jobs(db_session, filters, "id", batch_rows=3)
    ]
    assert batches == [[1, 2, 3], [4]]
    capped = [job.id async for batch in queries.stream_jobs(db_session, filters, "id", max_rows=2) for job in batch]
    assert capped == [1, 2]


async def test_export_without_the_test_session_reads_committed_jobs(
    db_engine: AsyncEngine, infra_settings: InfraSettings
) -> None:
    """The production path: the export's own request-scoped session stays open while the body streams."""
    base = 700_000 + uuid.uuid4().int % 100_000
    name = f"export-{uuid.uuid4().hex[:10]}"
    rows = [
        {
            "id": base + offset,
            "task_id": 1,
            "task_name": f"{name} {offset}",
            "status": "annotation",
            "stage": "annotation",
            "state": "new",
            "cvat_updated_at": DAY,
            "raw": {},
        }
        for offset in range(3)
    ]
    async with AsyncSession(db_engine, expire_on_commit=False) as session, session.begin():
        user = await create_user(session, username=name, password="export-password-1", role="viewer")
        await session.execute(insert(Job), rows)
    user_id = user.id
    token = TokenCodec.from_settings(infra_settings.jwt).issue(user_id, username=name, role="viewer").token
    app = create_app(Settings(infra=infra_settings, cvat_public_url=LINK_BASE))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.get(
                    EXPORT, params={"q": name, "sort": "id"}, headers={"Authorization": f"Bearer {token}"}
                )
            assert response.status_code == 200, response.text
            assert [row[0] for row in parse(response.text)[1:]] == [str(row["id"]) for row in rows]
    finally:
        async with AsyncSession(db_engine) as session, session.begin():
            await session.execute(delete(Job).where(Job.id.in_([row["id"] for row in rows])))
            await session.execute(delete(User).where(User.id == user_id))
