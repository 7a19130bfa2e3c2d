"""HTTP endpoints of the jobs feature: list, detail, history, stats and CSV export (viewers, `deps.CvatViewer`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.deps import AppSettings, CvatViewer
from cvat_sync.jobs import queries
from cvat_sync.jobs.deps import ExportSession, JobFilterParams
from cvat_sync.jobs.errors import JobNotFoundError
from cvat_sync.jobs.queries import EXPORT_MAX_ROWS, JobFilters
from cvat_sync.jobs.schemas import (
    CSV_COLUMNS,
    JobChangeOut,
    JobDetail,
    JobStatsOut,
    JobSummary,
    SortParam,
    csv_row,
)
from mirante.db import Session
from mirante.types import Id64
from mirante.web.csv_export import csv_bytes, csv_download
from mirante.web.pagination import Page, Pagination

DETAIL_HISTORY_LIMIT = 200

router = APIRouter(prefix="/api/v1", tags=["jobs"])

JobId = Annotated[Id64, Path(description="CVAT job id")]


async def _require_job(session: AsyncSession, job_id: int) -> None:
    if not await queries.job_exists(session, job_id):
        raise JobNotFoundError(job_id)


@router.get("/jobs", response_model=Page[JobSummary])
async def list_jobs(
    session: Session,
    principal: CvatViewer,
    settings: AppSettings,
    page: Pagination,
    filters: JobFilterParams,
    sort: SortParam = "-updated",
) -> Page[JobSummary]:
    """Mirrored CVAT jobs matching the filters, newest CVAT update first unless `sort` says otherwise.

    Jobs deleted in CVAT are left out unless `include_deleted=true`.
    """
    jobs, count = await queries.list_jobs(session, filters, sort, offset=page.offset, limit=page.limit)
    return page.build([JobSummary.of(job, settings.link_base) for job in jobs], count)


@router.get(
    "/jobs/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the matching jobs, one CSV line each"}},
)
async def export_jobs(
    session: ExportSession,
    principal: CvatViewer,
    settings: AppSettings,
    filters: JobFilterParams,
    sort: SortParam = "-updated",
) -> StreamingResponse:
    """The jobs matching the filters as a CSV download (header row first), in `sort` order.

    Streamed from a database cursor, so memory stays flat; one export holds at most 1,000,000 rows
    (narrow the filters for more). Cells that would start a spreadsheet formula get a leading `'`.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return csv_download(
        _csv_body(session, filters, sort, settings.link_base), f"cvat-jobs-{stamp}.csv", row_limit=EXPORT_MAX_ROWS
    )


async def _csv_body(session: AsyncSession, filters: JobFilters, sort: str, link_base: str) -> AsyncIterator[bytes]:
    yield csv_bytes([CSV_COLUMNS])
    async for batch in queries.stream_jobs(session, filters, sort):
        yield csv_bytes([csv_row(job, link_base) for job in batch])


# `{job_id:int}` matches digits only, so `/jobs/export.csv` never reaches the job routes, whatever the method.
@router.get("/jobs/{job_id:int}", response_model=JobDetail)
async def get_job(job_id: JobId, session: Session, principal: CvatViewer, settings: AppSettings) -> JobDetail:
    """One job (deleted ones too) with its raw CVAT payload, its latest 200 changes and its link in CVAT."""
    job = await queries.get_job(session, job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    history, history_count = await queries.job_history(session, job_id, limit=DETAIL_HISTORY_LIMIT)
    return JobDetail.build(job, settings.link_base, history, history_count)


@router.get("/jobs/{job_id:int}/history", response_model=Page[JobChangeOut])
async def get_job_history(
    job_id: JobId, session: Session, principal: CvatViewer, page: Pagination
) -> Page[JobChangeOut]:
    """Every recorded change of a job, newest first: what moved, from where (sync or webhook), and when."""
    await _require_job(session, job_id)
    changes, count = await queries.job_history(session, job_id, offset=page.offset, limit=page.limit)
    return page.build([JobChangeOut.model_validate(change) for change in changes], count)


@router.get("/stats", response_model=JobStatsOut)
async def get_stats(
    session: Session,
    principal: CvatViewer,
    filters: JobFilterParams,
    top: Annotated[int, Query(ge=1, le=100, description="how many projects and assignees to list")] = 10,
) -> JobStatsOut:
    """Totals (jobs, distinct tasks and projects, annotations) and breakdowns by status, project and assignee.

    Takes the same filters as the job list, so the numbers describe the jobs the list shows. Projects and
    assignees are listed busiest first; `assignee: null` (label "unassigned") groups jobs nobody holds.
    """
    return JobStatsOut.of(await queries.job_stats(session, filters, top=top))
