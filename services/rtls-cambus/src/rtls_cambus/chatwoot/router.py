"""HTTP endpoints of the Chatwoot integration: the webhook Chatwoot calls (anonymous, authenticated by its
signature or token) and the log of every request it received (admins of the whole suite)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mirante.db import Session
from mirante.types import Text
from mirante.web.errors import error_response
from mirante.web.pagination import Page, Pagination
from rtls_cambus.chatwoot import repository
from rtls_cambus.chatwoot.deps import RejectionThrottle, WebhookRateLimit
from rtls_cambus.chatwoot.errors import DeliveryLogNotFoundError
from rtls_cambus.chatwoot.models import ChatwootDelivery
from rtls_cambus.chatwoot.receiver import ChatwootWebhookReceiver, WebhookRequest
from rtls_cambus.chatwoot.schemas import DeliveryDetail, DeliveryLogId, DeliveryRead, DeliveryStatus, WebhookReceipt
from rtls_cambus.deps import AppSettings, SuiteAdmin

WEBHOOK_PATH: Final = "/api/v1/integrations/chatwoot/webhook"

router = APIRouter(prefix="/api/v1/integrations/chatwoot", tags=["chatwoot"])

RECEIVER_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed JSON, not a JSON object, or no event"},
    401: {"description": "signature missing, stale (over 5 minutes) or not matching; or the token is wrong"},
    413: {"description": "body above RTLS_CAMBUS_CHATWOOT_WEBHOOK_MAX_BODY_BYTES"},
    415: {"description": "content type is not application/json"},
    429: {"description": "too many requests from this address (`Retry-After`); not logged"},
    503: {"description": "Chatwoot is not enabled, or neither a webhook secret nor a token is configured"},
}

# Read raw (the signature covers the exact bytes), so the body and headers are described here.
RECEIVER_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Chatwoot-Signature",
            "in": "header",
            "required": False,
            "description": '`sha256=<hex HMAC-SHA256 of "{X-Chatwoot-Timestamp}." + raw body with the secret>`',
            "schema": {"type": "string"},
        },
        {
            "name": "X-Chatwoot-Timestamp",
            "in": "header",
            "required": False,
            "description": "unix seconds; accepted within 5 minutes of now",
            "schema": {"type": "string"},
        },
        {
            "name": "X-Chatwoot-Delivery",
            "in": "header",
            "required": False,
            "description": "delivery id, the same on Chatwoot's retries: a repeat is logged `duplicate`",
            "schema": {"type": "string"},
        },
        {
            "name": "token",
            "in": "query",
            "required": False,
            "description": "RTLS_CAMBUS_CHATWOOT_WEBHOOK_TOKEN, for Chatwoot servers that do not sign webhooks",
            "schema": {"type": "string"},
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["event"],
                    "properties": {"event": {"type": "string", "examples": ["message_created"]}},
                }
            }
        },
    },
}


async def receive_chatwoot_webhook(
    request: Request, session: Session, settings: AppSettings, throttle: RejectionThrottle
) -> Response:
    """Receive a Chatwoot webhook: verified, logged, de-duplicated on `X-Chatwoot-Delivery`, and queued for the
    incident's thread (an agent's reply becomes an incident message). Every request is in the log, refused or
    not; the answer carries its `log_id`."""
    received_at = datetime.now(UTC)
    body = await request.body()
    receiver = ChatwootWebhookReceiver(session, settings, throttle=throttle)
    receipt = await receiver.receive(
        WebhookRequest(
            body=body,
            headers=request.headers,
            token=request.query_params.get("token"),
            source_ip=request.client.host if request.client else None,
            received_at=received_at,
        )
    )
    if receipt.http_status < 300:
        answer = WebhookReceipt.model_validate(
            {"status": receipt.status, "log_id": receipt.log_id, "message": receipt.message}
        )
        return Response(orjson.dumps(answer.model_dump(mode="json")), media_type="application/json")
    # Answered, not raised: raising would roll back the request's transaction and with it the log row.
    details = {"log_id": receipt.log_id, "status": receipt.status}
    return error_response(receipt.http_status, receipt.code, receipt.message, details=details)


router.add_api_route(
    "/webhook",
    receive_chatwoot_webhook,
    methods=["POST"],
    response_model=WebhookReceipt,
    responses=RECEIVER_RESPONSES,
    openapi_extra=RECEIVER_OPENAPI,
    dependencies=[WebhookRateLimit],
    summary="Receive a Chatwoot webhook",
)


def _read(delivery: ChatwootDelivery) -> DeliveryRead:
    return DeliveryRead.model_validate(delivery)


@router.get("/deliveries")
async def list_chatwoot_deliveries(
    session: Session,
    principal: SuiteAdmin,
    pagination: Pagination,
    status: Annotated[DeliveryStatus | None, Query(description="only with this status")] = None,
    event: Annotated[Text | None, Query(max_length=100, description="only of this event, e.g. message_created")] = None,
) -> Page[DeliveryRead]:
    """Every request the webhook received, newest first (admins of the whole suite)."""
    found, count = await repository.list_deliveries(
        session,
        repository.DeliveryFilters(status=status, event=event),
        offset=pagination.offset,
        limit=pagination.limit,
    )
    return pagination.build([_read(delivery) for delivery in found], count)


@router.get("/deliveries/{log_id}")
async def get_chatwoot_delivery(session: Session, principal: SuiteAdmin, log_id: DeliveryLogId) -> DeliveryDetail:
    """One request with its body (only the start of an unauthenticated one) and audited headers."""
    delivery = await repository.get_delivery(session, log_id)
    if delivery is None:
        raise DeliveryLogNotFoundError(log_id)
    return DeliveryDetail.model_validate(delivery)
