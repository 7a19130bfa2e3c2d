"""Request parameters and response bodies of the jobs API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from cvat_sync.jobs.errors import InvalidJobQueryError
from cvat_sync.jobs.fields import SUMMARY_FIELDS
from cvat_sync.jobs.models import Job, JobChange
from cvat_sync.jobs.queries import MAX_SEARCH_LENGTH, JobFilters, JobStats
from cvat_sync.jobs.service import job_link
from mirante.types import DateTime, Id64, Text
from mirante.web.csv_export import text_cell
from mirante.web.errors import ValidationFailedError

Status = Literal["annotation", "validation", "completed"]
Stage = Literal["annotation", "validation", "acceptance"]
State = Literal["new", "in progress", "completed", "rejected"]
SortKey = Literal[
    "updated",
    "-updated",
    "id",
    "-id",
    "task_name",
    "-task_name",
    "project_name",
    "-project_name",
    "assignee",
    "-assignee",
    "status",
    "-status",
    "total_annotations",
    "-total_annotations",
]


def _search_text(q: str | None) -> str | None:
    if q is None or not q.strip():
        return None
    return q.strip()


async def job_filters(
    q: Annotated[
        Text | None,
        Query(
            max_length=MAX_SEARCH_LENGTH,
            description="full-text search over task name, project name and assignee; partial words match "
            'as prefixes; quotes ("exact phrase"), `or` and `-word` work as in a search engine',
        ),
    ] = None,
    project_id: Annotated[Id64 | None, Query(description="CVAT project id")] = None,
    task_id: Annotated[Id64 | None, Query(description="CVAT task id")] = None,
    assignee: Annotated[
        Text | None, Query(min_length=1, max_length=150, description="assignee's CVAT username (exact)")
    ] = None,
    assigned: Annotated[
        bool | None, Query(description="true: only jobs with an assignee; false: only unassigned jobs")
    ] = None,
    status: Annotated[list[Status] | None, Query(description="one or more statuses (repeat the parameter)")] = None,
    stage: Annotated[list[Stage] | None, Query(description="one or more stages (repeat the parameter)")] = None,
    state: Annotated[list[State] | None, Query(description="one or more states (repeat the parameter)")] = None,
    updated_from: Annotated[
        DateTime | None, Query(description="RFC 3339; jobs CVAT updated at or after this time")
    ] = None,
    updated_to: Annotated[
        DateTime | None, Query(description="RFC 3339; jobs CVAT updated at or before this time")
    ] = None,
    include_deleted: Annotated[bool, Query(description="also jobs deleted in CVAT")] = False,
) -> JobFilters:
    """The filters shared by the job list, the stats and the CSV export."""
    try:
        return JobFilters(
            search=_search_text(q),
            project_id=project_id,
            task_id=task_id,
            assignee=assignee,
            assigned=assigned,
            statuses=tuple(status or ()),
            stages=tuple(stage or ()),
            states=tuple(state or ()),
            updated_from=updated_from,
            updated_to=updated_to,
            include_deleted=include_deleted,
        )
    except InvalidJobQueryError as error:
        raise ValidationFailedError(str(error)) from None


SortParam = Annotated[
    SortKey,
    Query(description="sort key, `-` for descending; ties are broken by job id in the same direction"),
]


class JobSummary(BaseModel):
    """A job as the list shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: int | None
    task_name: str | None
    project_id: int | None
    project_name: str | None
    assignee: str | None
    status: str
    stage: str
    state: str
    job_type: str | None
    frame_count: int | None
    manual_annotations: int
    interpolated_annotations: int
    total_annotations: int
    cvat_updated_at: datetime
    last_synced_at: datetime
    deleted: bool
    deleted_at: datetime | None
    cvat_link: str

    @classmethod
    def of(cls, job: Job, link_base: str) -> JobSummary:
        return cls.model_validate(_summary_fields(job, link_base))


def _summary_fields(job: Job, link_base: str) -> dict[str, Any]:
    fields = {name: getattr(job, name) for name in SUMMARY_FIELDS}
    fields.update(deleted=job.deleted_at is not None, cvat_link=job_link(link_base, job))
    return fields


class JobChangeOut(BaseModel):
    """One change of a job: the fields that moved (`{"field": [old, new]}`) and the job's state after it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    source: str
    changes: dict[str, Any]
    status: str
    stage: str
    state: str
    assignee: str | None
    cvat_updated_at: datetime | None
    changed_at: datetime


class JobDetail(JobSummary):
    """A job with its raw CVAT payload and its most recent changes."""

    assignee_id: int | None
    cvat_created_at: datetime | None
    annotations_counted_at: datetime | None
    counts_requested_at: datetime | None = Field(
        description="set while a recount asked for by a webhook is pending (the next sync does it if the "
        "webhook's own recount failed); null once counted"
    )
    created_at: datetime
    updated_at: datetime
    raw: dict[str, Any]
    history: list[JobChangeOut]
    history_count: int

    @classmethod
    def build(cls, job: Job, link_base: str, history: list[JobChange], history_count: int) -> JobDetail:
        fields = _summary_fields(job, link_base)
        fields.update(history=[JobChangeOut.model_validate(change) for change in history], history_count=history_count)
        fields.update({name: getattr(job, name) for name in cls.model_fields.keys() - fields.keys()})
        return cls.model_validate(fields)


class TotalsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    jobs: int
    tasks: int
    projects: int
    manual_annotations: int
    interpolated_annotations: int
    annotations: int


class StatusCountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: str
    jobs: int
    annotations: int


class ProjectCountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project_id: int | None
    project_name: str | None
    jobs: int
    tasks: int
    annotations: int


class AssigneeCountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    assignee: str | None
    label: str
    jobs: int
    annotations: int


UNASSIGNED_LABEL = "unassigned"


class JobStatsOut(BaseModel):
    """Totals and breakdowns of the jobs matching the filters (the same filters as the list)."""

    totals: TotalsOut
    by_status: list[StatusCountOut]
    by_project: list[ProjectCountOut]
    by_assignee: list[AssigneeCountOut]

    @classmethod
    def of(cls, stats: JobStats) -> JobStatsOut:
        return cls(
            totals=TotalsOut.model_validate(stats.totals),
            by_status=[StatusCountOut.model_validate(item) for item in stats.by_status],
            by_project=[ProjectCountOut.model_validate(item) for item in stats.by_project],
            by_assignee=[
                AssigneeCountOut(
                    assignee=item.assignee,
                    label=item.assignee if item.assignee is not None else UNASSIGNED_LABEL,
                    jobs=item.jobs,
                    annotations=item.annotations,
                )
                for item in stats.by_assignee
            ],
        )


EXPORTED_FIELDS = tuple(name for name in SUMMARY_FIELDS if name != "deleted_at")
CSV_COLUMNS = (*EXPORTED_FIELDS, "deleted", "cvat_link")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str):
        # Names come from CVAT users, so a spreadsheet must not run them.
        return text_cell(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def csv_row(job: Job, link_base: str) -> list[Any]:
    """One export line, in `CSV_COLUMNS` order."""
    cells = [_csv_cell(getattr(job, name)) for name in EXPORTED_FIELDS]
    return [*cells, "true" if job.deleted_at is not None else "false", job_link(link_base, job)]
