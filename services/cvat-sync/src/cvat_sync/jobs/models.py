"""Mirrored CVAT jobs and the history of their changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import Computed

from cvat_sync.db import Base

SEARCH_DOCUMENT = (
    "to_tsvector('simple', coalesce(task_name, '') || ' ' || coalesce(project_name, '') || ' ' || "
    "coalesce(assignee, ''))"
)


class Job(Base):
    """One CVAT job as last seen (by a sync or a webhook); `deleted_at` is set when CVAT no longer has it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, comment="CVAT job id")
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    task_name: Mapped[str | None] = mapped_column(String(500))
    project_id: Mapped[int | None] = mapped_column(BigInteger)
    project_name: Mapped[str | None] = mapped_column(String(500))
    assignee: Mapped[str | None] = mapped_column(String(150), comment="CVAT username")
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), comment="annotation | validation | completed")
    stage: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    job_type: Mapped[str | None] = mapped_column(String(30))
    frame_count: Mapped[int | None] = mapped_column(Integer)
    manual_annotations: Mapped[int] = mapped_column(Integer, server_default="0")
    interpolated_annotations: Mapped[int] = mapped_column(Integer, server_default="0")
    total_annotations: Mapped[int] = mapped_column(Integer, server_default="0")
    annotations_counted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    counts_requested_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="when a change announced without counts (a webhook) asked for a recount; null once counted",
    )
    cvat_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cvat_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the job as CVAT last sent it")
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    search: Mapped[Any] = mapped_column(TSVECTOR, Computed(SEARCH_DOCUMENT, persisted=True), deferred=True)

    __table_args__ = (
        Index("ix_jobs_search", "search", postgresql_using="gin"),
        Index("ix_jobs_project_id", "project_id"),
        Index("ix_jobs_task_id", "task_id"),
        Index("ix_jobs_assignee", "assignee"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_cvat_updated_at", "cvat_updated_at"),
    )


class JobChange(Base):
    """One change of a job: which fields moved from what to what, and where the change came from."""

    __tablename__ = "job_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20), comment="sync | webhook")
    kind: Mapped[str] = mapped_column(String(20), comment="created | updated | deleted | restored")
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, comment='{"field": [old, new]}')
    status: Mapped[str] = mapped_column(String(20))
    stage: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    assignee: Mapped[str | None] = mapped_column(String(150))
    cvat_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_job_history_job_id_changed_at", "job_id", "changed_at"),)
