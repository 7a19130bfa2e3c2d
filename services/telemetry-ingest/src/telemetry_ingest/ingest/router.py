"""`POST /ingest`: telemetry from EMQX's HTTP action (rule-engine messages), authenticated by API key.

The path is the one the original deployment's EMQX rule posts to, so existing rules keep working.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request

from mirante.db import Session
from mirante.web.errors import UnsupportedMediaTypeError
from telemetry_ingest.ingest.deps import INGEST_PATH, INGEST_SCOPE, HttpIngestDep, IngestCaller
from telemetry_ingest.ingest.schemas import IngestReceipt
from telemetry_ingest.ingest.service import ingest_emqx_body

router = APIRouter(tags=["ingest"])

JSON_MEDIA_TYPE: Final = "application/json"

RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON, not an object or a list, or an empty list"},
    401: {"description": "no API key, or one that is unknown, revoked or expired"},
    403: {"description": f"not an API key, or a key without the scope {INGEST_SCOPE!r}"},
    413: {"description": "body above TELEMETRY_INGEST_INGEST_MAX_BODY_BYTES, or more messages than allowed"},
    415: {"description": "content type is not application/json"},
}


@router.post(INGEST_PATH, response_model=IngestReceipt, responses=RESPONSES, summary="Ingest EMQX rule-engine messages")
async def ingest(
    request: Request,
    session: Session,
    caller: IngestCaller,
    ingest: HttpIngestDep,
) -> IngestReceipt:
    """Store telemetry sent by EMQX's HTTP action: one message `{"client_id", "topic", "payload", "ts"}` or a
    JSON list of them, `topic` being `tenants/{tenant}/devices/{device_id}/sensors/{sensor_type}` and `payload`
    the MQTT payload (a reading object or a list of them, as a JSON string or already decoded).

    Answers 200 whenever the body could be read, with counts and every refused message or reading (bad input is
    recorded with its reason, never fails the request; the good readings of a message are kept). Idempotent:
    sending the same body again stores nothing twice. An API key bound to a tenant writes only that tenant;
    messages for others are refused with a reason.
    """
    if _media_type(request.headers.get("content-type")) != JSON_MEDIA_TYPE:
        raise UnsupportedMediaTypeError(f"send the body as {JSON_MEDIA_TYPE}")
    body = await request.body()
    return await ingest_emqx_body(session, body, caller, ingest)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()
