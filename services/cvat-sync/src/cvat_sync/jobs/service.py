"""Applying what CVAT says about jobs to the mirror: upsert by job id, history of changes, events out.

Sync and webhooks both go through `JobMirror`, in batches, so a job is diffed, recorded and announced the
same way whichever path brought it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.cvat.payloads import AnnotationCounts, CvatJob
from cvat_sync.jobs import repository
from cvat_sync.jobs.fields import COUNT_FIELDS, TRACKED_FIELDS
from cvat_sync.jobs.models import Job
from cvat_sync.jobs.repository import StoredJob
from mirante.bus import Event, emit_many, outbox_insert

SCHEMA = "cvat_sync"
SOURCE = "mirante/cvat-sync"


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"


@dataclass(frozen=True)
class Incoming:
    """A job as CVAT sent it; `counts` when they were fetched (new or changed jobs during a sync)."""

    job: CvatJob
    raw: dict[str, Any]
    counts: AnnotationCounts | None = None


def is_newer(incoming: CvatJob, stored: StoredJob | None, force: bool = False) -> bool:
    """Whether `incoming` must be written: unknown, deleted, newer than the stored copy, or forced."""
    return stored is None or stored.deleted_at is not None or force or incoming.updated_date > stored.cvat_updated_at


def job_link(link_base: str, job: CvatJob | Job) -> str:
    """Where the job opens in CVAT's UI."""
    if job.task_id is None:
        return f"{link_base}/jobs/{job.id}"
    return f"{link_base}/tasks/{job.task_id}/jobs/{job.id}"


def _values(item: Incoming, now: datetime) -> dict[str, Any]:
    job = item.job
    values: dict[str, Any] = {
        "id": job.id,
        "task_id": job.task_id,
        "task_name": job.task_name,
        "project_id": job.project_id,
        "project_name": job.project_name,
        "assignee": job.assignee.username if job.assignee else None,
        "assignee_id": job.assignee.id if job.assignee else None,
        "status": job.status,
        "stage": job.stage,
        "state": job.state,
        "job_type": job.type,
        "frame_count": job.frame_count,
        "cvat_created_at": job.created_date,
        "cvat_updated_at": job.updated_date,
        "raw": item.raw,
        "deleted_at": None,
        "last_synced_at": now,
        "updated_at": now,
    }
    if item.counts is not None:
        values.update(_count_values(item.counts, now), counts_requested_at=None)
    else:
        # A change CVAT announced without counts (a webhook): annotation saves move `updated_date` too, so the
        # stored counts may be behind until someone counts again (the webhook's recount, or the next sync).
        values["counts_requested_at"] = now
    return values


def _count_values(counts: AnnotationCounts, now: datetime) -> dict[str, Any]:
    return {
        "manual_annotations": counts.manual,
        "interpolated_annotations": counts.interpolated,
        "total_annotations": counts.total,
        "annotations_counted_at": now,
    }


def _changes(stored: StoredJob, values: dict[str, Any]) -> dict[str, list[Any]]:
    fields = TRACKED_FIELDS + (COUNT_FIELDS if "total_annotations" in values else ())
    return {
        field: [getattr(stored, field), values[field]] for field in fields if getattr(stored, field) != values[field]
    }


def _snapshot(job: StoredJob) -> dict[str, Any]:
    """What history rows and events say of a stored job."""
    return {name: getattr(job, name) for name in (*TRACKED_FIELDS, "id", "cvat_updated_at")}


@dataclass
class MirrorPlan:
    """The writes a batch of incoming jobs calls for, and the outcome of each job, in order."""

    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    inserts: list[repository.JobWrite] = field(default_factory=list)
    updates: list[repository.JobWrite] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class JobMirror:
    """Writes batches of CVAT jobs in the caller's transaction (flush only; the boundary commits)."""

    def __init__(self, session: AsyncSession, *, source: str) -> None:
        self.session = session
        self.source = source

    async def stored(self, ids: Sequence[int]) -> dict[int, StoredJob]:
        """The stored copies of `ids`, locked for this transaction."""
        return await repository.lock_stored(self.session, ids)

    async def apply(
        self, items: Sequence[Incoming], *, force: bool = False, stored: dict[int, StoredJob] | None = None
    ) -> list[Outcome]:
        """Create, update or skip each job; returns one outcome per item, in order."""
        existing = stored if stored is not None else await self.stored([item.job.id for item in items])
        plan = self.plan(items, existing, force=force)
        await self.write(plan)
        return plan.outcomes

    def plan(self, items: Sequence[Incoming], stored: dict[int, StoredJob], *, force: bool = False) -> MirrorPlan:
        """What `apply` would write, decided against `stored` (from `stored()`, so locked), without writing."""
        now = datetime.now(UTC)
        plan = MirrorPlan(now=now)
        for item in items:
            previous = stored.get(item.job.id)
            values = _values(item, now)
            if previous is None:
                plan.inserts.append(repository.JobWrite(values, self._history(values, "created", {}, now)))
                plan.events.append(self._event("cvat.job.created", values, {}))
                plan.outcomes.append(Outcome.CREATED)
                continue
            stale = item.job.updated_date < previous.cvat_updated_at
            # Counts brought for a job whose recount was asked for are written even when the job did not move.
            recount = item.counts is not None and previous.counts_requested_at is not None and not stale
            if not is_newer(item.job, previous, force) and not recount:
                plan.outcomes.append(Outcome.STALE if stale else Outcome.UNCHANGED)
                plan.unchanged.append(item.job.id)
                continue
            changes = _changes(previous, values)
            restored = previous.deleted_at is not None
            if changes or restored:
                history = self._history(values, "restored" if restored else "updated", changes, now)
                plan.updates.append(repository.JobWrite(values, history))
                plan.events.append(self._event("cvat.job.updated", values, changes))
                plan.outcomes.append(Outcome.UPDATED)
            else:
                plan.updates.append(repository.JobWrite(values))
                newer = item.job.updated_date > previous.cvat_updated_at
                plan.outcomes.append(Outcome.UPDATED if newer else Outcome.UNCHANGED)
        return plan

    async def write(self, plan: MirrorPlan, *, companion: repository.Companion | None = None) -> None:
        """Carry out `plan`: jobs with their history rows, the seen-unchanged marks, the events. The events and
        `companion`, a statement of the caller's, ride in the round trip of a single job's write (a webhook's
        case) or run on their own."""
        companions: list[repository.Companion] = [] if companion is None else [companion]
        if events := outbox_insert(SCHEMA, plan.events):
            companions.append(repository.Companion(*events))
        left = await repository.insert_jobs(self.session, plan.inserts, tuple(companions))
        left = await repository.update_jobs(self.session, plan.updates, left)
        await repository.touch(self.session, plan.unchanged, plan.now)
        await repository.run_companions(self.session, left)

    async def record_counts(self, job_id: int, counts: AnnotationCounts, *, asked_before: datetime) -> bool:
        """Store counts fetched for a job whose recount was asked for (a fetch that started at `asked_before`):
        a history row and a `cvat.job.updated` event when they changed. The request is settled unless it was
        made again after the fetch started (the next fetch settles it). False, writing nothing, when no recount
        is pending any more (a sync counted meanwhile) or the job is gone."""
        previous = (await self.stored([job_id])).get(job_id)
        if previous is None or previous.deleted_at is not None or previous.counts_requested_at is None:
            return False
        now = datetime.now(UTC)
        values: dict[str, Any] = {"id": job_id, **_count_values(counts, now)}
        if previous.counts_requested_at <= asked_before:
            values["counts_requested_at"] = None
        changes = {
            name: [getattr(previous, name), values[name]]
            for name in COUNT_FIELDS
            if getattr(previous, name) != values[name]
        }
        plan = MirrorPlan(now=now)
        if changes:
            values["updated_at"] = now
            snapshot = _snapshot(previous)
            plan.updates.append(repository.JobWrite(values, self._history(snapshot, "updated", changes, now)))
            plan.events.append(self._event("cvat.job.updated", snapshot, changes))
            plan.outcomes.append(Outcome.UPDATED)
        else:
            plan.updates.append(repository.JobWrite(values))
            plan.outcomes.append(Outcome.UNCHANGED)
        await self.write(plan)
        return True

    async def jobs_of(
        self, *, task_id: int | None = None, project_id: int | None = None, live_only: bool = True
    ) -> list[StoredJob]:
        """The stored jobs of a task or of a project, locked for this transaction."""
        return await repository.lock_jobs_of(self.session, task_id=task_id, project_id=project_id, live_only=live_only)

    async def copy_fields(self, jobs: Sequence[StoredJob], values: dict[str, Any]) -> int:
        """Copy fields of a task or project (its name, the project a task moved to) onto its stored jobs: each
        job that changes gets a history row and a `cvat.job.updated` event. Returns how many jobs changed."""
        plan = MirrorPlan(now=datetime.now(UTC))
        for job in jobs:
            snapshot = _snapshot(job)
            changes = {name: [snapshot[name], value] for name, value in values.items() if snapshot[name] != value}
            if not changes:
                continue
            snapshot.update(values)
            history = self._history(snapshot, "updated", changes, plan.now)
            plan.updates.append(repository.JobWrite({"id": job.id, **values, "updated_at": plan.now}, history))
            plan.events.append(self._event("cvat.job.updated", snapshot, changes))
            plan.outcomes.append(Outcome.UPDATED)
        await self.write(plan)
        return len(plan.updates)

    async def mark_deleted(self, jobs: Sequence[StoredJob]) -> int:
        """Mark stored jobs as deleted in CVAT (kept, with their history, for the record)."""
        now = datetime.now(UTC)
        live = [job for job in jobs if job.deleted_at is None]
        if not live:
            return 0
        snapshots = [_snapshot(job) for job in live]
        await repository.update_jobs(
            self.session,
            [
                repository.JobWrite(
                    {"id": job.id, "deleted_at": now, "updated_at": now}, self._history(values, "deleted", {}, now)
                )
                for job, values in zip(live, snapshots, strict=True)
            ],
        )
        await emit_many(self.session, SCHEMA, [self._event("cvat.job.deleted", values, {}) for values in snapshots])
        return len(live)

    def _history(
        self, values: dict[str, Any], kind: str, changes: dict[str, list[Any]], now: datetime
    ) -> dict[str, Any]:
        return {
            "job_id": values["id"],
            "source": self.source,
            "kind": kind,
            "changes": changes,
            "status": values["status"],
            "stage": values["stage"],
            "state": values["state"],
            "assignee": values["assignee"],
            "cvat_updated_at": values["cvat_updated_at"],
            "changed_at": now,
        }

    def _event(self, event_type: str, values: dict[str, Any], changes: dict[str, list[Any]]) -> Event:
        data = {field: values[field] for field in TRACKED_FIELDS}
        data.update(job_id=values["id"], changes=changes, via=self.source)
        return Event(source=SOURCE, type=event_type, subject=f"job/{values['id']}", data=data)
