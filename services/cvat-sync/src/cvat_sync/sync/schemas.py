"""Request and response bodies of the sync-run endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cvat_sync.cvat.payloads import Status
from cvat_sync.sync.filters import SyncFilters
from cvat_sync.sync.models import SyncRun
from cvat_sync.sync.service import run_duration_seconds, run_progress, run_summary
from cvat_sync.sync.stats import MAX_JOB_ERRORS


class SyncRunCreate(BaseModel):
    """What to sync: CVAT's own filters (project, task, assignee username), the derived status, `force`, and
    where the start came from."""

    model_config = ConfigDict(extra="forbid")

    project_id: int | None = Field(default=None, gt=0, description="only jobs of this CVAT project")
    task_id: int | None = Field(default=None, gt=0, description="only jobs of this CVAT task")
    assignee: str | None = Field(default=None, min_length=1, max_length=150, description="CVAT username")
    status: Status | None = Field(default=None, description="derived status, applied after listing")
    force: StrictBool = Field(default=False, description="rewrite jobs (and recount annotations) even when unchanged")
    trigger: Literal["api", "web"] = Field(
        default="api",
        description="where the start came from, as the run records it: `web` for the pages' sync button, "
        "`api` otherwise (`cli` belongs to `cvat-sync sync`)",
    )

    def filters(self) -> SyncFilters:
        return SyncFilters(project_id=self.project_id, task_id=self.task_id, assignee=self.assignee, status=self.status)


class JobError(BaseModel):
    """A job a sync skipped, and why."""

    job_id: int | None = Field(description="null when CVAT listed an object without a usable id")
    message: str = Field(description='e.g. "updated_date: out of range: must be between 1970-01-01 and 9999-12-31"')


class SyncRunRead(BaseModel):
    """A sync run: who started it, with which filters, its counts so far (or final), and how it ended."""

    id: int
    status: str = Field(description="queued | running | success | error")
    trigger: str = Field(description="cli | api | web")
    started_by: str | None
    filters: dict[str, Any]
    force: bool
    expected: int | None = Field(description="jobs CVAT reported for the server-side filters")
    fetched: int
    created: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    progress: float | None = Field(description="fetched / expected, 0 to 1; null until CVAT reported a count")
    duration_seconds: float | None
    summary: str = Field(
        description='what the run did, for people: "3 created, 1 updated, 40 unchanged", or for a forced run '
        '"forced: re-fetched 44 jobs and recounted their annotations; 4 changed"'
    )
    error: str | None = Field(description="why the run failed, for people; null when it succeeded")
    job_errors: list[JobError] = Field(
        description=f"the first {MAX_JOB_ERRORS} jobs that could not be synced (the run went on without them); "
        "`failed` counts them all"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_run(cls, run: SyncRun) -> SyncRunRead:
        return cls(
            id=run.id,
            status=run.status,
            trigger=run.trigger,
            started_by=run.started_by,
            filters=dict(run.filters),
            force=run.force,
            expected=run.expected,
            fetched=run.fetched,
            created=run.created,
            updated=run.updated,
            unchanged=run.unchanged,
            deleted=run.deleted,
            failed=run.failed,
            progress=run_progress(run),
            duration_seconds=run_duration_seconds(run),
            summary=run_summary(run),
            error=run.error,
            job_errors=[JobError.model_validate(item) for item in run.job_errors],
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
