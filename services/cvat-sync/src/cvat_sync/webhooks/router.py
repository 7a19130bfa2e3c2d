"""HTTP endpoints of the webhooks feature: CVAT's webhook receiver and the audit log API (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from fastapi.responses import Response

from cvat_sync.deps import AppSettings, CvatAdmin
from cvat_sync.webhooks import service
from cvat_sync.webhooks.deps import RejectionThrottle
from cvat_sync.webhooks.models import WebhookLog
from cvat_sync.webhooks.recount import count_refresher
from cvat_sync.webhooks.schemas import (
    LogStatus,
    WebhookLogDetail,
    WebhookLogFilters,
    WebhookLogOut,
    WebhookReceipt,
)
from mirante.db import Session
from mirante.types import DateTime, Id64, Text
from mirante.web.errors import ValidationFailedError, error_response
from mirante.web.pagination import Page, Pagination

router = APIRouter(tags=["webhooks"])

WEBHOOK_PATH = "/api/v1/webhooks/cvat"
# The path the original system documented for CVAT's webhook settings; kept so existing webhooks keep working.
ALIAS_PATHS = ("/cvat/webhook/", "/cvat/webhook")
LogId = Annotated[Id64, Path(description="webhook log id")]

RECEIVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed JSON, not a JSON object, or no event"},
    401: {"description": "X-Signature-256 missing or not matching the raw body"},
    413: {"description": "body above CVAT_SYNC_WEBHOOK_MAX_BODY_BYTES"},
    415: {"description": "content type is not application/json"},
    422: {"description": "an invalid job, task or project object; `details.errors` names the fields"},
    429: {"description": "too many unauthenticated requests from this address (`Retry-After`); not logged"},
    500: {"description": "processing failed unexpectedly (logged as error; CVAT may retry)"},
    503: {"description": "CVAT_SYNC_WEBHOOK_SECRET is not set: every webhook is refused"},
}

# Read raw (the signature covers the exact bytes), so the body is described here rather than by a model.
RECEIVER_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Signature-256",
            "in": "header",
            "required": False,
            "description": "`sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>`",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["event"],
                    "properties": {"event": {"type": "string", "examples": ["update:job"]}},
                }
            }
        },
    },
}


async def receive_cvat_webhook(
    request: Request,
    session: Session,
    settings: AppSettings,
    throttle: RejectionThrottle,
    background: BackgroundTasks,
) -> Response:
    """Receive a CVAT webhook: logged before processing, verified with `X-Signature-256` over the raw body.

    200 for processed, ignored (unknown events and jobs, stale updates) and duplicate deliveries. Every
    request, refused or not, is in the webhook log; the answer carries its `log_id`.
    """
    received_at = datetime.now(UTC)
    body = await request.body()
    receiver = service.CvatWebhookReceiver(session, settings.webhook_secret.get_secret_value(), throttle=throttle)
    result = await receiver.receive(
        service.WebhookRequest(
            body=body,
            headers=request.headers,
            source_ip=request.client.host if request.client else None,
            received_at=received_at,
        )
    )
    refresher = count_refresher(request.app)
    if result.recount and refresher is not None:
        # After the response, hence after the commit that recorded the request for the recount.
        background.add_task(refresher.request, result.recount)
    if result.http_status < 300:
        receipt = WebhookReceipt(status=result.status, log_id=result.log_id, message=result.message)
        return Response(orjson.dumps(receipt.model_dump(mode="json")), media_type="application/json")
    details: dict[str, Any] = {"log_id": result.log_id, "status": result.status.value}
    if result.problems:
        details["errors"] = [{"field": problem.field, "message": problem.message} for problem in result.problems]
    # Answered, not raised: raising would roll back the request's transaction and with it the log row.
    return error_response(
        result.http_status, result.error_code or "error", result.message or result.status.value, details=details
    )


router.add_api_route(
    WEBHOOK_PATH,
    receive_cvat_webhook,
    methods=["POST"],
    response_model=WebhookReceipt,
    responses=RECEIVER_RESPONSES,
    openapi_extra=RECEIVER_BODY,
    summary="Receive a CVAT webhook",
)
for alias in ALIAS_PATHS:
    router.add_api_route(alias, receive_cvat_webhook, methods=["POST"], include_in_schema=False)


@router.get("/api/v1/webhook-logs", response_model=Page[WebhookLogOut])
async def list_webhook_logs(
    admin: CvatAdmin,
    session: Session,
    pagination: Pagination,
    status: Annotated[list[LogStatus] | None, Query(description="repeat for several statuses")] = None,
    event_type: Annotated[Text | None, Query(max_length=100, description="e.g. update:job")] = None,
    job_id: Annotated[Id64 | None, Query()] = None,
    received_after: Annotated[DateTime | None, Query(description="inclusive; RFC 3339")] = None,
    received_before: Annotated[DateTime | None, Query(description="exclusive; RFC 3339")] = None,
) -> Page[WebhookLogOut]:
    """The webhook audit log, newest first, filtered by status, event type, job and time received (admins)."""
    filters = WebhookLogFilters(
        statuses=status or [],
        event_type=event_type,
        job_id=job_id,
        received_after=received_after,
        received_before=received_before,
    )
    if filters.received_after and filters.received_before and filters.received_after >= filters.received_before:
        raise ValidationFailedError("received_after must be earlier than received_before")
    logs, count = await service.list_logs(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([WebhookLogOut.model_validate(log) for log in logs], count)


@router.get("/api/v1/webhook-logs/{log_id}", response_model=WebhookLogDetail)
async def get_webhook_log(log_id: LogId, admin: CvatAdmin, session: Session) -> WebhookLogDetail:
    """One webhook request with its raw body, parsed payload and kept headers (admins)."""
    log = await service.get_log(session, log_id)
    return _detail(log)


def _detail(log: WebhookLog) -> WebhookLogDetail:
    try:
        payload: Any = orjson.loads(log.body)
    except orjson.JSONDecodeError:
        payload = None
    summary = WebhookLogOut.model_validate(log).model_dump()
    return WebhookLogDetail(**summary, body=log.body, headers=log.headers, payload=payload)
