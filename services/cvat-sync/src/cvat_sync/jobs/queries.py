"""Read-side queries on the mirrored jobs: filtered lists, full-text search, stats, history, streamed exports.

The list, the stats and the CSV export share `JobFilters` and `conditions`, so the page's stat cards and the
exported file always describe the same jobs as the table.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, distinct, func, literal, select
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, defer, load_only

from cvat_sync.cvat.payloads import STAGES, STATES, STATUSES
from cvat_sync.jobs.errors import InvalidJobQueryError
from cvat_sync.jobs.fields import SUMMARY_FIELDS
from cvat_sync.jobs.models import Job, JobChange
from mirante.db import paginate_scalars

SEARCH_CONFIG = "simple"
MAX_SEARCH_LENGTH = 200
MAX_SEARCH_TERMS = 8
DEFAULT_SORT = "-updated"
EXPORT_MAX_ROWS = 1_000_000
"""Hard cap on one CSV export; beyond it the file is cut (narrow the filters to get the rest)."""
EXPORT_BATCH_ROWS = 1_000

_WORD = re.compile(r"[^\W_]+")
# Quotes, a standalone `or` and a leading `-` are websearch_to_tsquery's phrase, alternative and negation.
_WEB_SEARCH_SYNTAX = re.compile(r'"|(?:^|\s)-\S|(?:^|\s)or(?:\s|$)', re.IGNORECASE)

SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "updated": Job.cvat_updated_at,
    "id": Job.id,
    "task_name": Job.task_name,
    "project_name": Job.project_name,
    "assignee": Job.assignee,
    "status": Job.status,
    "total_annotations": Job.total_annotations,
}
SORT_KEYS: tuple[str, ...] = tuple(key for name in SORT_COLUMNS for key in (name, f"-{name}"))

SUMMARY_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = tuple(getattr(Job, name) for name in SUMMARY_FIELDS)


def _check_allowed(name: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise InvalidJobQueryError(
            f"unknown {name} {', '.join(map(repr, unknown))}; allowed: {', '.join(map(repr, allowed))}"
        )


@dataclass(frozen=True)
class JobFilters:
    """Which jobs a list, stats or export covers; every field narrows the set (empty means no filter)."""

    search: str | None = None
    project_id: int | None = None
    task_id: int | None = None
    assignee: str | None = None
    assigned: bool | None = None
    statuses: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    include_deleted: bool = False

    def __post_init__(self) -> None:
        _check_allowed("status", self.statuses, STATUSES)
        _check_allowed("stage", self.stages, STAGES)
        _check_allowed("state", self.states, STATES)
        if self.search is not None and len(self.search) > MAX_SEARCH_LENGTH:
            raise InvalidJobQueryError(f"search text is longer than {MAX_SEARCH_LENGTH} characters")
        for name in ("updated_from", "updated_to"):
            moment: datetime | None = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidJobQueryError(f"{name} needs a time zone")
        if self.updated_from and self.updated_to and self.updated_from > self.updated_to:
            raise InvalidJobQueryError("updated_from must not be after updated_to")


def prefix_tsquery(text: str) -> str | None:
    """`word:* & word:*` for plain input, so partial words match; None when `text` uses web-search syntax.

    Only runs of letters and digits reach the query, so quotes, `&`, `:` or `!` typed by a user can never
    form tsquery syntax of their own.
    """
    if _WEB_SEARCH_SYNTAX.search(text):
        return None
    words = _WORD.findall(text.lower())[:MAX_SEARCH_TERMS]
    if not words:
        return None
    return " & ".join(f"{word}:*" for word in words)


def search_condition(text: str) -> ColumnElement[bool]:
    """Full-text match on task name, project name and assignee (the stored `search` tsvector).

    `websearch_to_tsquery` reads the text as a search engine would (quotes for phrases, `or`, `-word`);
    for plain words the prefix query is OR-ed in, so `stre` finds `street`. Text without any word matches
    nothing.
    """
    config = literal(SEARCH_CONFIG, type_=REGCONFIG)
    query: ColumnElement[Any] = func.websearch_to_tsquery(config, text)
    prefix = prefix_tsquery(text)
    if prefix is not None:
        query = query.op("||")(func.to_tsquery(config, prefix))
    return Job.search.op("@@")(query)


def conditions(filters: JobFilters) -> list[ColumnElement[bool]]:
    """The WHERE clauses for `filters`."""
    where: list[ColumnElement[bool]] = []
    if not filters.include_deleted:
        where.append(Job.deleted_at.is_(None))
    if filters.search and filters.search.strip():
        where.append(search_condition(filters.search.strip()))
    if filters.project_id is not None:
        where.append(Job.project_id == filters.project_id)
    if filters.task_id is not None:
        where.append(Job.task_id == filters.task_id)
    if filters.assignee is not None:
        where.append(Job.assignee == filters.assignee)
    if filters.assigned is not None:
        where.append(Job.assignee.is_not(None) if filters.assigned else Job.assignee.is_(None))
    if filters.statuses:
        where.append(Job.status.in_(filters.statuses))
    if filters.stages:
        where.append(Job.stage.in_(filters.stages))
    if filters.states:
        where.append(Job.state.in_(filters.states))
    if filters.updated_from is not None:
        where.append(Job.cvat_updated_at >= filters.updated_from)
    if filters.updated_to is not None:
        where.append(Job.cvat_updated_at <= filters.updated_to)
    return where


def ordering(sort: str) -> list[ColumnElement[Any]]:
    """ORDER BY for a sort key (`name` ascending, `-name` descending), ties broken by job id the same way."""
    descending = sort.startswith("-")
    column = SORT_COLUMNS.get(sort.removeprefix("-"))
    if column is None:
        raise InvalidJobQueryError(f"unknown sort {sort!r}; allowed: {', '.join(SORT_KEYS)}")
    if column is Job.id:
        return [Job.id.desc() if descending else Job.id.asc()]
    # Jobs without a task name, project or assignee go last whichever the direction.
    primary = column.desc().nulls_last() if descending else column.asc().nulls_last()
    return [primary, Job.id.desc() if descending else Job.id.asc()]


def summaries(filters: JobFilters, sort: str = DEFAULT_SORT) -> Select[Job]:
    """The jobs matching `filters` in `sort` order, loading only the list columns."""
    return (
        select(Job)
        .options(load_only(*SUMMARY_COLUMNS, raiseload=True))
        .where(*conditions(filters))
        .order_by(*ordering(sort))
    )


async def list_jobs(
    session: AsyncSession, filters: JobFilters, sort: str = DEFAULT_SORT, *, offset: int = 0, limit: int = 50
) -> tuple[list[Job], int]:
    """One page of matching jobs (list columns only) and the number of all matching jobs."""
    if offset < 0 or limit < 1:
        raise InvalidJobQueryError("offset must be >= 0 and limit >= 1")
    return await paginate_scalars(session, summaries(filters, sort), offset=offset, limit=limit)


async def stream_jobs(
    session: AsyncSession,
    filters: JobFilters,
    sort: str = DEFAULT_SORT,
    *,
    max_rows: int = EXPORT_MAX_ROWS,
    batch_rows: int = EXPORT_BATCH_ROWS,
) -> AsyncIterator[Sequence[Job]]:
    """Matching jobs in batches read through a server-side cursor: memory stays flat however many match.

    Needs an open transaction on `session` for as long as the iteration runs.
    """
    statement = summaries(filters, sort).limit(max_rows).execution_options(yield_per=batch_rows)
    result = await session.stream_scalars(statement)
    try:
        async for batch in result.partitions():
            yield batch
    finally:
        await result.close()


async def get_job(session: AsyncSession, job_id: int) -> Job | None:
    """The job with every column (the raw payload included), deleted or not."""
    return await session.scalar(
        select(Job).options(defer(Job.search)).where(Job.id == job_id).execution_options(populate_existing=True)
    )


async def job_exists(session: AsyncSession, job_id: int) -> bool:
    """Whether the mirror holds the job (deleted or not)."""
    return await session.scalar(select(Job.id).where(Job.id == job_id)) is not None


async def job_history(
    session: AsyncSession, job_id: int, *, offset: int = 0, limit: int = 50
) -> tuple[list[JobChange], int]:
    """A page of a job's changes, newest first, and how many changes it has in all."""
    if offset < 0 or limit < 1:
        raise InvalidJobQueryError("offset must be >= 0 and limit >= 1")
    history = (
        select(JobChange).where(JobChange.job_id == job_id).order_by(JobChange.changed_at.desc(), JobChange.id.desc())
    )
    return await paginate_scalars(session, history, offset=offset, limit=limit)


@dataclass(frozen=True)
class Totals:
    jobs: int
    tasks: int
    projects: int
    manual_annotations: int
    interpolated_annotations: int
    annotations: int


@dataclass(frozen=True)
class StatusCount:
    status: str
    jobs: int
    annotations: int


@dataclass(frozen=True)
class ProjectCount:
    project_id: int | None
    project_name: str | None
    jobs: int
    tasks: int
    annotations: int


@dataclass(frozen=True)
class AssigneeCount:
    assignee: str | None
    jobs: int
    annotations: int


@dataclass(frozen=True)
class JobStats:
    """Totals and breakdowns of the jobs matching one set of filters."""

    totals: Totals
    by_status: list[StatusCount]
    by_project: list[ProjectCount]
    by_assignee: list[AssigneeCount]


def _annotations() -> ColumnElement[int]:
    return func.coalesce(func.sum(Job.total_annotations), 0)


async def job_stats(session: AsyncSession, filters: JobFilters, *, top: int = 10) -> JobStats:
    """Aggregates computed by Postgres (one GROUP BY per breakdown); `top` bounds projects and assignees.

    Every status appears, with zeros when no job has it; projects and assignees come busiest first, and
    jobs without a project or an assignee form their own group (`None`).
    """
    if top < 1:
        raise InvalidJobQueryError("top must be >= 1")
    where = conditions(filters)
    totals_row = (
        await session.execute(
            select(
                func.count(),
                func.count(distinct(Job.task_id)),
                func.count(distinct(Job.project_id)),
                func.coalesce(func.sum(Job.manual_annotations), 0),
                func.coalesce(func.sum(Job.interpolated_annotations), 0),
                _annotations(),
            )
            .select_from(Job)
            .where(*where)
        )
    ).one()
    status_rows = await session.execute(
        select(Job.status, func.count(), _annotations()).where(*where).group_by(Job.status)
    )
    per_status = {status: (jobs, annotations) for status, jobs, annotations in status_rows}
    jobs_count = func.count().label("jobs")
    project_rows = await session.execute(
        select(
            Job.project_id, func.max(Job.project_name), jobs_count, func.count(distinct(Job.task_id)), _annotations()
        )
        .where(*where)
        .group_by(Job.project_id)
        .order_by(jobs_count.desc(), Job.project_id.asc().nulls_last())
        .limit(top)
    )
    assignee_rows = await session.execute(
        select(Job.assignee, jobs_count, _annotations())
        .where(*where)
        .group_by(Job.assignee)
        .order_by(jobs_count.desc(), Job.assignee.asc().nulls_last())
        .limit(top)
    )
    return JobStats(
        totals=Totals(*totals_row),
        by_status=[StatusCount(status, *per_status.get(status, (0, 0))) for status in STATUSES],
        by_project=[ProjectCount(*row) for row in project_rows],
        by_assignee=[AssigneeCount(*row) for row in assignee_rows],
    )
