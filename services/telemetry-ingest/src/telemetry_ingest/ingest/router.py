"""`POST /ingest`: telemetry from EMQX's HTTP action (rule-engine messages), authenticated by API key.

The path is the one the original deployment's EMQX rule posts to, so existing rules keep working.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request

from mirante.auth.principal import CurrentPrincipal, Principal
from mirante.db import Session
from mirante.web.errors import ForbiddenError, UnsupportedMediaTypeError
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest.metrics import ingest_metrics
from telemetry_ingest.ingest.pipeline import ParseOptions
from telemetry_ingest.ingest.schemas import IngestReceipt
from telemetry_ingest.ingest.service import HttpIngest, ingest_emqx_body, telemetry_writer

router = APIRouter(tags=["ingest"])

INGEST_PATH: Final = "/ingest"
INGEST_SCOPE: Final = "telemetry:ingest"
JSON_MEDIA_TYPE: Final = "application/json"

RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON, not an object or a list, or an empty list"},
    401: {"description": "no API key, or one that is unknown, revoked or expired"},
    403: {"description": f"not an API key, or a key without the scope {INGEST_SCOPE!r}"},
    413: {"description": "body above TELEMETRY_INGEST_INGEST_MAX_BODY_BYTES, or more messages than allowed"},
    415: {"description": "content type is not application/json"},
}


async def ingest_caller(principal: CurrentPrincipal) -> Principal:
    """An API key holding the `telemetry:ingest` scope (or `*`); 403 for anything else."""
    if principal.kind != "api_key":
        raise ForbiddenError(
            f"{INGEST_PATH} takes an API key with the scope {INGEST_SCOPE!r} (header X-API-Key), not a user token"
        )
    if not principal.has_scope(INGEST_SCOPE):
        raise ForbiddenError(f"this API key lacks the scope {INGEST_SCOPE!r}")
    return principal


IngestCaller = Annotated[Principal, Depends(ingest_caller)]


def http_ingest(request: Request) -> HttpIngest:
    """The writer, limits and metrics of the app."""
    settings: Settings = request.app.state.settings
    return HttpIngest(
        writer=telemetry_writer(request.app),
        options=ParseOptions.from_settings(settings),
        max_messages=settings.ingest_max_messages_per_request,
        metrics=ingest_metrics(request.app),
    )


@router.post(INGEST_PATH, response_model=IngestReceipt, responses=RESPONSES, summary="Ingest EMQX rule-engine messages")
async def ingest(
    request: Request,
    session: Session,
    caller: IngestCaller,
    ingest: Annotated[HttpIngest, Depends(http_ingest)],
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
