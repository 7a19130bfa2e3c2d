"""The job mirror: upsert by CVAT job id, skip what is not newer, keep history, announce changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.cvat.errors import InvalidJobPayloadError
from cvat_sync.cvat.payloads import AnnotationCounts, CvatJob, derive_status
from cvat_sync.jobs.models import Job, JobChange
from cvat_sync.jobs.service import Incoming, JobMirror, Outcome, job_link

BASE = datetime(2025, 3, 2, 9, 15, tzinfo=UTC)


def raw_job(job_id: int, *, updated: datetime = BASE, **changes: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "url": f"http://cvat.test/api/jobs/{job_id}",
        "id": job_id,
        "task_id": 15,
        "task_name": "street-batch-01",
        "project_id": 7,
        "project_name": "Street scenes",
        "assignee": {"url": "http://cvat.test/api/users/3", "id": 3, "username": "alice"},
        "status": "annotation",
        "stage": "annotation",
        "state": "in progress",
        "type": "annotation",
        "frame_count": 50,
        "created_date": "2025-03-01T10:00:00.000000Z",
        "updated_date": updated.isoformat().replace("+00:00", "Z"),
    }
    job.update(changes)
    return job


def incoming(raw: dict[str, Any], counts: AnnotationCounts | None = None) -> Incoming:
    return Incoming(CvatJob.parse(raw), raw, counts)


async def outbox_types(session: AsyncSession, job_id: int) -> list[str]:
    rows = await session.execute(
        text("SELECT type FROM cvat_sync.outbox WHERE subject = :subject ORDER BY created_at"),
        {"subject": f"job/{job_id}"},
    )
    return list(rows.scalars())


async def history(session: AsyncSession, job_id: int) -> list[JobChange]:
    rows = await session.scalars(select(JobChange).where(JobChange.job_id == job_id).order_by(JobChange.id))
    return list(rows)


@pytest.mark.parametrize(
    ("stage", "state", "status"),
    [
        ("annotation", "new", "annotation"),
        ("annotation", "completed", "annotation"),
        ("validation", "in progress", "validation"),
        ("acceptance", "completed", "completed"),
        ("acceptance", "new", "validation"),
    ],
)
def test_status_is_derived_as_cvat_derives_it(stage: str, state: str, status: str) -> None:
    assert derive_status(stage, state) == status


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a dict", "JSON object"),
        ({"id": 1, "stage": "annotation", "state": "new"}, "updated_date"),
        ({"id": "x", "stage": "annotation", "state": "new", "updated_date": "2025-01-01T00:00:00Z"}, "id"),
        ({"id": 0, "stage": "annotation", "state": "new", "updated_date": "2025-01-01T00:00:00Z"}, "id"),
        ({"id": 1, "stage": "annotation", "state": "new", "updated_date": "yesterday"}, "updated_date"),
    ],
)
def test_bad_job_payloads_are_refused_with_the_field_named(raw: Any, message: str) -> None:
    with pytest.raises(InvalidJobPayloadError, match=message):
        CvatJob.parse(raw)


def test_annotation_counts() -> None:
    counts = AnnotationCounts.from_annotations({"shapes": [{}, {}], "tags": [{}], "tracks": [{}, {}, {}]})
    assert (counts.manual, counts.interpolated, counts.total) == (3, 3, 6)
    with pytest.raises(InvalidJobPayloadError):
        AnnotationCounts.from_annotations({"shapes": "many"})


def test_links_point_into_cvat() -> None:
    job = CvatJob.parse(raw_job(42))
    assert job_link("https://cvat.example.com", job) == "https://cvat.example.com/tasks/15/jobs/42"


async def test_create_then_unchanged_then_updated_with_history_and_events(db_session: AsyncSession) -> None:
    mirror = JobMirror(db_session, source="sync")
    assert await mirror.apply([incoming(raw_job(42), AnnotationCounts(3, 1))]) == [Outcome.CREATED]
    job = await db_session.get(Job, 42)
    assert job is not None
    assert (job.status, job.assignee, job.total_annotations) == ("annotation", "alice", 4)

    assert await mirror.apply([incoming(raw_job(42))]) == [Outcome.UNCHANGED]

    moved = raw_job(
        42,
        updated=BASE + timedelta(days=2),
        stage="acceptance",
        state="completed",
        assignee={"id": 4, "username": "bob"},
    )
    assert await mirror.apply([incoming(moved)]) == [Outcome.UPDATED]
    await db_session.refresh(job)
    assert (job.status, job.stage, job.state, job.assignee) == ("completed", "acceptance", "completed", "bob")
    assert job.total_annotations == 4, "counts not fetched for this update are kept"

    changes = await history(db_session, 42)
    assert [change.kind for change in changes] == ["created", "updated"]
    assert changes[1].changes == {
        "assignee": ["alice", "bob"],
        "status": ["annotation", "completed"],
        "stage": ["annotation", "acceptance"],
        "state": ["in progress", "completed"],
    }
    assert await outbox_types(db_session, 42) == ["cvat.job.created", "cvat.job.updated"]


async def test_older_snapshots_are_stale_and_force_rewrites(db_session: AsyncSession) -> None:
    mirror = JobMirror(db_session, source="webhook")
    await mirror.apply([incoming(raw_job(50, updated=BASE))])
    older = raw_job(50, updated=BASE - timedelta(hours=1), state="completed")
    assert await mirror.apply([incoming(older)]) == [Outcome.STALE]
    job = await db_session.get(Job, 50)
    assert job is not None and job.state == "in progress"

    same_time_new_state = raw_job(50, updated=BASE, state="rejected")
    assert await mirror.apply([incoming(same_time_new_state)]) == [Outcome.UNCHANGED]
    assert await mirror.apply([incoming(same_time_new_state)], force=True) == [Outcome.UPDATED]
    await db_session.refresh(job)
    assert job.state == "rejected"


async def test_deleted_jobs_are_kept_marked_and_come_back(db_session: AsyncSession) -> None:
    mirror = JobMirror(db_session, source="sync")
    await mirror.apply([incoming(raw_job(60)), incoming(raw_job(61))])

    assert await mirror.mark_deleted(list((await mirror.stored([60])).values())) == 1
    gone = await db_session.get(Job, 60)
    assert gone is not None and gone.deleted_at is not None
    kept = await db_session.get(Job, 61)
    assert kept is not None and kept.deleted_at is None
    again = list((await mirror.stored([60])).values())
    assert await mirror.mark_deleted(again) == 0, "already deleted jobs are not deleted twice"

    assert await mirror.apply([incoming(raw_job(60))]) == [Outcome.UPDATED]
    await db_session.refresh(gone)
    assert gone.deleted_at is None
    assert [change.kind for change in await history(db_session, 60)] == ["created", "deleted", "restored"]
    assert await outbox_types(db_session, 60) == ["cvat.job.created", "cvat.job.deleted", "cvat.job.updated"]
