"""The names of a job's fields, written once: what a change of a job is, what the mirror compares, what a list
row and an export line show. The model (`jobs.models.Job`) has the columns; these name the sets of them."""

from __future__ import annotations

TRACKED_FIELDS = (
    "task_id",
    "task_name",
    "project_id",
    "project_name",
    "assignee",
    "status",
    "stage",
    "state",
    "job_type",
    "frame_count",
)
"""A change to one of these is a change of the job: kept in its history and announced in its events."""

COUNT_FIELDS = ("manual_annotations", "interpolated_annotations", "total_annotations")
"""The annotation counts, compared only when a write brings fresh ones."""

STORED_FIELDS = ("id", *TRACKED_FIELDS, *COUNT_FIELDS, "cvat_updated_at", "deleted_at", "counts_requested_at")
"""What the mirror reads of a stored job to compare an incoming one with (`jobs.repository.StoredJob`)."""

SUMMARY_FIELDS = ("id", *TRACKED_FIELDS, *COUNT_FIELDS, "cvat_updated_at", "last_synced_at", "deleted_at")
"""The columns a list row or an export line needs (no raw payload)."""
