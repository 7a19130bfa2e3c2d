"""Shapes of the webhooks feature: log statuses, what CVAT sends about tasks and projects, API documents."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cvat_sync.cvat.payloads import MAX_BIGINT as MAX_BIGINT
from cvat_sync.cvat.payloads import Text


class LogStatus(StrEnum):
    """Where a webhook request stands; the last five are final.

    `rejected`: refused before processing (content type, signature, unreadable body); `error`: accepted but
    processing failed; `ignored`: nothing to do (unknown event, unknown job, stale update); `duplicate`: the
    same body was already processed.
    """

    pending = "pending"
    processing = "processing"
    success = "success"
    error = "error"
    rejected = "rejected"
    duplicate = "duplicate"
    ignored = "ignored"


# A redelivery of a body that reached one of these is a duplicate; after `error` or `rejected` it is processed.
PROCESSED_STATUSES = (LogStatus.success, LogStatus.ignored, LogStatus.duplicate)


class _CvatObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int = Field(gt=0, le=MAX_BIGINT)


class CvatRef(_CvatObject):
    """A job, task or project of which only the id matters (what `delete:*` events need)."""


class CvatTaskRef(_CvatObject):
    """The fields of CVAT's `TaskRead` that stored jobs copy."""

    name: Text = Field(max_length=500)
    project_id: int | None = Field(default=None, gt=0, le=MAX_BIGINT)
    project_name: Text | None = Field(default=None, max_length=500)


class CvatProjectRef(_CvatObject):
    """The fields of CVAT's `ProjectRead` that stored jobs copy."""

    name: Text = Field(max_length=500)


class WebhookReceipt(BaseModel):
    """The answer to a webhook CVAT should not resend: processed, ignored or a duplicate."""

    status: LogStatus
    log_id: int = Field(description="id of the audit log entry of this request")
    message: str | None = Field(default=None, description="what was done, or why nothing was")


class WebhookLogFilters(BaseModel):
    """Filters of the webhook log list; `received_after` is inclusive, `received_before` exclusive."""

    statuses: list[LogStatus] = Field(default_factory=list)
    event_type: str | None = Field(default=None, max_length=100)
    job_id: int | None = Field(default=None, gt=0, le=MAX_BIGINT)
    received_after: datetime | None = None
    received_before: datetime | None = None

    @field_validator("received_after", "received_before")
    @classmethod
    def _utc_when_naive(cls, value: datetime | None) -> datetime | None:
        # Times without an offset are taken as UTC, the zone the log is written in.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class WebhookLogOut(BaseModel):
    """One webhook request in the list: outcome and metadata, without body and headers."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    event_type: str | None
    status: LogStatus
    signature_valid: bool
    source_ip: str | None
    job_id: int | None
    webhook_id: int | None = Field(description="CVAT's id of the webhook that sent the request")
    error_message: str | None = Field(description="why it failed or was rejected; a note for ignored/duplicate")
    body_sha256: str = Field(description="SHA-256 of the whole body as received")
    body_size: int | None = Field(description="bytes received; null for requests logged before sizes were kept")
    body_truncated: bool = Field(description="true when only the start of the body is kept (unauthenticated)")
    received_at: datetime
    processed_at: datetime | None


class WebhookLogDetail(WebhookLogOut):
    """One webhook request with the raw body as received and the headers kept for the audit."""

    body: str = Field(
        description="the raw body, decoded as UTF-8 (undecodable bytes replaced); only its first 4 KiB when "
        "`body_truncated` (the signature did not verify)"
    )
    headers: dict[str, Any]
    payload: Any = Field(default=None, description="the body parsed as JSON, null when it is not JSON (or cut short)")
