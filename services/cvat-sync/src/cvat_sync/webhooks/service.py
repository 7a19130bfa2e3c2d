"""Receiving CVAT webhooks: audit every request first, then apply what it says to the job mirror.

Order of checks (each failure is logged `rejected`, and nothing is processed):
415 when the content type is not `application/json`; 503 when no secret is configured (a webhook endpoint
without a secret would accept forged job changes, so it refuses everything until `CVAT_SYNC_WEBHOOK_SECRET`
is set; CVAT retries 5xx, so deliveries made meanwhile are not lost on servers that retry); 401 when
`X-Signature-256` is missing or does not match the raw body; 400 when the body is not a JSON object with an
`event` string.

A request whose signature did not verify proves nothing about its sender, so its log row keeps the headers,
size, SHA-256 and only the start of the body (the suite's limits for every webhook log, `mirante.webhooks.audit`),
and such requests are counted per source address (`CVAT_SYNC_WEBHOOK_REJECTED_RATE_LIMIT`): past the limit
they get 429 with `Retry-After` and are not logged at all. Authenticated requests are never counted and always
keep their whole body.

An admitted request's log row is inserted (`pending`) in the request's transaction before anything else, then
the event is processed inside a SAVEPOINT. A processing failure rolls back to the savepoint only, so the row
survives with status `error` and commits with the request. Because row and outcome commit together, other
readers only ever see final statuses; `processing` is the in-memory stage between the two writes. A job event
writes its outcome in the same statement as the job (a delivery is worth a handful of round trips, and each
one costs more than the work around it).

Answers follow CVAT's retry rules (5xx, 408 and 429 are retried, other 4xx are final): 200 for success,
ignored (unknown events, unknown jobs, stale updates) and duplicates; 422 naming the fields for a job, task or
project object CVAT would send the same way again (a missing field, a number past its column, an impossible
date); 500 for unexpected failures, which a retry may get past. A 500 says no more than that: the driver's or
Python's text goes to the service log, with the log row's id.

`error_message` also carries the note of a 200: an update older than the stored job is logged `ignored` with
"stale: ..." (not applied), a redelivered body `duplicate` with the id of the log that processed it first.
Duplicates are found by SHA-256 of the raw body among requests that ended success, ignored or duplicate, since
CVAT sends no delivery id; a body that ended in error or was rejected is processed again when it comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from limits import RateLimitItem
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.cvat.errors import FieldProblem, InvalidJobPayloadError
from cvat_sync.cvat.payloads import CvatJob, invalid_payload
from cvat_sync.jobs.repository import StoredJob
from cvat_sync.jobs.service import Incoming, JobMirror, Outcome
from cvat_sync.webhooks import repository
from cvat_sync.webhooks.errors import WebhookLogNotFoundError, WebhookPayloadError
from cvat_sync.webhooks.models import WebhookLog
from cvat_sync.webhooks.schemas import (
    MAX_BIGINT,
    CvatProjectRef,
    CvatRef,
    CvatTaskRef,
    LogStatus,
    WebhookLogFilters,
)
from mirante.web.ratelimit import RateLimiter
from mirante.webhooks import SHA256_SIGNATURE_HEADER, SignatureError, audit, verify_sha256_hex
from mirante.webhooks.audit import Throttle, db_text, kept_headers, media_type, stored_body

logger = logging.getLogger(__name__)

SOURCE = "webhook"
JOB_EVENTS = frozenset({"create:job", "update:job", "delete:job"})
JSON_MEDIA_TYPE = "application/json"
SECRET_VARIABLE = "CVAT_SYNC_WEBHOOK_SECRET"
# Kept for the audit; never credentials. The signature is kept: it proves nothing without the secret.
KEPT_HEADERS = ("content-type", "content-length", "user-agent", SHA256_SIGNATURE_HEADER.lower(), "x-forwarded-for")
MAX_EVENT_CHARS = 100
MAX_SOURCE_IP_CHARS = 64
MAX_MESSAGE_CHARS = 2000
THROTTLE_SCOPE = "cvat-webhook-rejected"
PROCESSING_FAILED_MESSAGE = "processing failed unexpectedly; the details are in the service log"

Ref = TypeVar("Ref", bound=BaseModel)


def rejection_throttle(limiter: RateLimiter | None, rate: RateLimitItem) -> Throttle | None:
    """The per-address limit of unauthenticated rejections on the suite's Redis limiter (None: no limiter)."""
    return audit.rejection_throttle(limiter, rate, THROTTLE_SCOPE)


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook request as received: raw body bytes, headers (case-insensitive mapping) and socket peer."""

    body: bytes
    headers: Mapping[str, str]
    source_ip: str | None
    received_at: datetime


@dataclass(frozen=True)
class WebhookResult:
    """What became of a request: its log row, final status, the HTTP answer and a message."""

    log_id: int
    status: LogStatus
    http_status: int
    message: str | None
    error_code: str | None = None
    problems: tuple[FieldProblem, ...] = ()
    """The invalid fields of a 422."""
    recount: tuple[int, ...] = ()
    """Jobs the request wrote whose annotations must be counted again, once the request has committed."""


@dataclass(frozen=True)
class _Rejection:
    http_status: int
    code: str
    message: str


@dataclass(frozen=True)
class _Handled:
    status: LogStatus
    message: str
    logged: bool = False
    """The handler wrote the outcome to the log row itself (with its last write)."""
    recount: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Admission:
    """The outcome of the checks done before anything is written: what the log row records."""

    signature_valid: bool
    payload: dict[str, Any] | None
    event: str | None
    rejection: _Rejection | None = None

    def refused(self, http_status: int, code: str, message: str) -> _Admission:
        return replace(self, rejection=_Rejection(http_status, code, message))


def _bigint(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_BIGINT:
        return value
    return None


def _nested_id(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    return _bigint(value.get("id")) if isinstance(value, dict) else None


def _parse_body(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The body as a JSON object, or the reason it is not one."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return None, f"the body is not valid JSON: {error}"
    if not isinstance(payload, dict):
        return None, f"the body must be a JSON object, not {type(payload).__name__}"
    return payload, None


def _parse_ref(model: type[Ref], raw: Any, what: str) -> Ref:
    if not isinstance(raw, dict):
        raise WebhookPayloadError(f"the webhook has no {what} object", (FieldProblem(what, "must be an object"),))
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        invalid = invalid_payload(what, error)
        raise WebhookPayloadError(str(invalid), invalid.problems) from None


Handler = Callable[[int, dict[str, Any]], Awaitable[_Handled]]
"""Processes an admitted request: its log row id and its payload."""


class CvatWebhookReceiver:
    """Checks, logs and processes CVAT webhook requests in the caller's transaction (flush only)."""

    def __init__(self, session: AsyncSession, secret: str, *, throttle: Throttle | None = None) -> None:
        self.session = session
        self.secret = secret
        self.throttle = throttle
        self.handlers: dict[str, Handler] = {
            "ping": self._ping,
            "create:job": self._upsert_job,
            "update:job": self._upsert_job,
            "delete:job": self._delete_job,
            "create:task": self._refresh_task,
            "update:task": self._refresh_task,
            "delete:task": self._delete_task,
            "create:project": self._refresh_project,
            "update:project": self._refresh_project,
            "delete:project": self._delete_project,
        }
        self._locked_jobs: dict[int, StoredJob | None] = {}

    async def receive(self, request: WebhookRequest) -> WebhookResult:
        """Log `request`, then process it unless it is refused or a duplicate; never raises for what CVAT sent.

        `RateLimitedError` (429, nothing logged) when an unauthenticated request exceeds its address's limit.
        """
        admission = self._admit(request)
        if not admission.signature_valid and self.throttle is not None:
            await self.throttle(request.source_ip)
        payload = admission.payload or {}
        kept = stored_body(request.body, admission.signature_valid)
        values: dict[str, Any] = {
            "event_type": db_text(admission.event, MAX_EVENT_CHARS) if admission.event is not None else None,
            "body": kept.body,
            "body_size": kept.body_size,
            "body_truncated": kept.body_truncated,
            "body_sha256": kept.body_sha256,
            "headers": kept_headers(request.headers, KEPT_HEADERS),
            "source_ip": db_text(request.source_ip, MAX_SOURCE_IP_CHARS) if request.source_ip else None,
            "signature_valid": admission.signature_valid,
            "job_id": _nested_id(payload, "job"),
            "webhook_id": _bigint(payload.get("webhook_id")) or _nested_id(payload, "webhook"),
            "received_at": request.received_at,
        }
        rejection = admission.rejection
        if rejection is not None:
            values.update(
                status=LogStatus.rejected.value, error_message=rejection.message, processed_at=datetime.now(UTC)
            )
            log_id, _, _ = await repository.insert_log(self.session, values)
            return WebhookResult(log_id, LogStatus.rejected, rejection.http_status, rejection.message, rejection.code)

        values.update(status=LogStatus.pending.value, error_message=None, processed_at=None)
        # A job event's job is read (and locked) by the log row's own statement, saving the handler a round trip.
        lock_job_id = values["job_id"] if admission.event in JOB_EVENTS else None
        log_id, processed_before, stored = await repository.insert_log(self.session, values, lock_job_id=lock_job_id)
        if lock_job_id is not None:
            self._locked_jobs[lock_job_id] = stored
        if processed_before is not None:
            return await self._finish(log_id, LogStatus.duplicate, f"same body as webhook log {processed_before}")
        assert admission.event is not None
        return await self._process(log_id, admission.event, payload)

    def _admit(self, request: WebhookRequest) -> _Admission:
        # The body is read even when the request is refused, so the log says what a refused request claimed.
        signature_error = self._signature_error(request)
        payload, parse_error = _parse_body(request.body)
        event = payload.get("event") if payload is not None else None
        admitted = _Admission(signature_error is None, payload, event if isinstance(event, str) and event else None)
        content_type = media_type(request.headers.get("content-type"))
        if content_type != JSON_MEDIA_TYPE:
            shown = content_type[:MAX_EVENT_CHARS] or "none"
            return admitted.refused(415, "unsupported_media_type", f"content type {shown!r}: send {JSON_MEDIA_TYPE}")
        if not self.secret:
            return admitted.refused(
                503,
                "webhook_secret_missing",
                f"webhooks are refused until {SECRET_VARIABLE} is set to the secret configured on the CVAT "
                "webhook (without it anyone could forge job changes)",
            )
        if signature_error is not None:
            return admitted.refused(401, "invalid_signature", signature_error)
        if parse_error is not None:
            return admitted.refused(400, "malformed_json", parse_error)
        if admitted.event is None:
            return admitted.refused(400, "bad_request", 'the body has no "event" string')
        return admitted

    def _signature_error(self, request: WebhookRequest) -> str | None:
        if not self.secret:
            return "no webhook secret is configured"
        try:
            verify_sha256_hex(self.secret, request.body, request.headers.get(SHA256_SIGNATURE_HEADER.lower()))
        except SignatureError as error:
            return str(error)
        return None

    async def _process(self, log_id: int, event: str, payload: dict[str, Any]) -> WebhookResult:
        handler = self.handlers.get(event)
        if handler is None:
            return await self._finish(log_id, LogStatus.ignored, f"event {event!r} is not handled")
        try:
            handled = await self._in_savepoint(handler, log_id, payload)
        except InvalidJobPayloadError as error:
            result = await self._finish(log_id, LogStatus.error, str(error), http_status=422, code="invalid_payload")
            return replace(result, problems=error.problems)
        except Exception:
            logger.exception("processing CVAT webhook log %s (%s) failed", log_id, event)
            return await self._finish(
                log_id, LogStatus.error, PROCESSING_FAILED_MESSAGE, http_status=500, code="processing_failed"
            )
        if handled.logged:
            return WebhookResult(log_id, handled.status, 200, handled.message, recount=handled.recount)
        return replace(await self._finish(log_id, handled.status, handled.message), recount=handled.recount)

    async def _in_savepoint(self, handler: Handler, log_id: int, payload: dict[str, Any]) -> _Handled:
        # A plain SQL savepoint rather than `session.begin_nested()`: processing writes through Core only (no
        # ORM state to expire when it is rolled back), and a successful one needs no RELEASE, since the commit
        # ends it; that saves a round trip per webhook.
        await repository.open_savepoint(self.session)
        try:
            try:
                return await handler(log_id, payload)
            except IntegrityError:
                # Another request inserted the same new job first; our insert waited for its commit, so once
                # more finds the job stored and updates it (or finds ours stale).
                await repository.roll_back_to_savepoint(self.session)
                return await handler(log_id, payload)
        except Exception:
            await repository.roll_back_to_savepoint(self.session)
            raise

    async def _finish(
        self, log_id: int, status: LogStatus, message: str, *, http_status: int = 200, code: str | None = None
    ) -> WebhookResult:
        message = db_text(message, MAX_MESSAGE_CHARS)
        await repository.finish_log(
            self.session, log_id, status=status, error_message=message, processed_at=datetime.now(UTC)
        )
        return WebhookResult(log_id, status, http_status, message, code)

    async def _ping(self, log_id: int, payload: dict[str, Any]) -> _Handled:
        webhook = _nested_id(payload, "webhook")
        return _Handled(LogStatus.success, f"ping from CVAT webhook {webhook}" if webhook else "ping")

    async def _upsert_job(self, log_id: int, payload: dict[str, Any]) -> _Handled:
        raw = payload.get("job")
        job = CvatJob.parse(raw)
        assert isinstance(raw, dict)
        mirror = JobMirror(self.session, source=SOURCE)
        stored = await self._stored_job(mirror, job.id)
        plan = mirror.plan([Incoming(job, raw)], {} if stored is None else {job.id: stored})
        handled = _upsert_outcome(job, plan.outcomes[0], stored)
        # The log row's outcome travels with the job's write; a failure after it rolls back both.
        outcome = repository.finish_log_companion(
            log_id, status=handled.status, error_message=handled.message, processed_at=datetime.now(UTC)
        )
        await mirror.write(plan, companion=outcome)
        # A written job asked for a recount (`counts_requested_at`): the payload has no counts.
        written = bool(plan.inserts or plan.updates)
        return replace(handled, logged=True, recount=(job.id,) if written else ())

    async def _delete_job(self, log_id: int, payload: dict[str, Any]) -> _Handled:
        ref = _parse_ref(CvatRef, payload.get("job"), "job")
        mirror = JobMirror(self.session, source=SOURCE)
        job = await self._stored_job(mirror, ref.id)
        if job is None:
            return _Handled(LogStatus.ignored, f"job {ref.id} is not mirrored")
        if job.deleted_at is not None:
            return _Handled(LogStatus.ignored, f"job {ref.id} was already marked deleted")
        await mirror.mark_deleted([job])
        return _Handled(LogStatus.success, f"job {ref.id} marked deleted")

    async def _stored_job(self, mirror: JobMirror, job_id: int) -> StoredJob | None:
        """The stored job, locked: as read with the log row, or read now (a retry, or an id that was no bigint)."""
        if job_id in self._locked_jobs:
            return self._locked_jobs.pop(job_id)
        return (await mirror.stored([job_id])).get(job_id)

    async def _refresh_task(self, log_id: int, payload: dict[str, Any]) -> _Handled:
        raw = payload.get("task")
        task = _parse_ref(CvatTaskRef, raw, "task")
        assert isinstance(raw, dict)
        values: dict[str, Any] = {"task_name": task.name}
        if "project_id" in raw:
            # A task moved to another project (or out of one) takes its jobs along.
            values.update(project_id=task.project_id, project_name=task.project_name)
        mirror = JobMirror(self.session, source=SOURCE)
        # Deleted jobs take the new names too, so their pages name the task and project as CVAT does now.
        changed = await mirror.copy_fields(await mirror.jobs_of(task_id=task.id, live_only=False), values)
        return _Handled(LogStatus.success, f"task {task.id}: {changed} stored job(s) refreshed")

    async def _refresh_project(self, log_id: int, payload: dict[str, Any]) -> _Handled:
        project = _parse_ref(CvatProjectRef, payload.get("project"), "project")
        mirror = JobMirror(self.session, source=SOURCE)
        jobs = await mirror.jobs_of(project_id=project.id, live_only=False)
        changed = await mirror.copy_fields(jobs, {"project_name": project.name})
        return _Handled(LogStatus.success, f"project {project.id}: {changed} stored job(s) refreshed")

    async def _delete_task(self, log_id: int, payload: dict[str, Any]) -> _Handled:
        task = _parse_ref(CvatRef, payload.get("task"), "task")
        jobs = await JobMirror(self.session, source=SOURCE).jobs_of(task_id=task.id)
        return await self._delete_jobs(jobs, f"task {task.id}")

    async def _delete_project(self, log_id: int, payload: dict[str, Any]) -> _Handled:
        project = _parse_ref(CvatRef, payload.get("project"), "project")
        jobs = await JobMirror(self.session, source=SOURCE).jobs_of(project_id=project.id)
        return await self._delete_jobs(jobs, f"project {project.id}")

    async def _delete_jobs(self, jobs: list[StoredJob], owner: str) -> _Handled:
        if not jobs:
            return _Handled(LogStatus.ignored, f"{owner} has no mirrored jobs")
        deleted = await JobMirror(self.session, source=SOURCE).mark_deleted(jobs)
        return _Handled(LogStatus.success, f"{deleted} job(s) of {owner} marked deleted")


def _upsert_outcome(job: CvatJob, outcome: Outcome, previous: StoredJob | None) -> _Handled:
    if outcome is Outcome.STALE:
        stored_date = previous.cvat_updated_at.isoformat() if previous is not None else "?"
        message = (
            f"stale: job {job.id} updated_date {job.updated_date.isoformat()} is older than the stored "
            f"{stored_date}; not applied"
        )
        return _Handled(LogStatus.ignored, message)
    if outcome is Outcome.UNCHANGED:
        return _Handled(LogStatus.success, f"job {job.id} unchanged: not newer than the stored copy")
    return _Handled(LogStatus.success, f"job {job.id} {outcome.value}")


async def list_logs(
    session: AsyncSession, filters: WebhookLogFilters, *, offset: int, limit: int
) -> tuple[list[WebhookLog], int]:
    """A page of webhook log rows, newest first, with the total count."""
    return await repository.list_logs(session, filters, offset=offset, limit=limit)


async def get_log(session: AsyncSession, log_id: int) -> WebhookLog:
    """One webhook log row; `WebhookLogNotFoundError` (404) when there is none."""
    log = await repository.get_log(session, log_id)
    if log is None:
        raise WebhookLogNotFoundError(log_id)
    return log
