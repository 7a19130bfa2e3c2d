"""Request dependencies of `POST /ingest`: the caller's API key and what the request stores with."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, Request

from mirante.auth.principal import CurrentPrincipal, Principal
from mirante.web.errors import ForbiddenError
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest.metrics import ingest_metrics
from telemetry_ingest.ingest.pipeline import ParseOptions
from telemetry_ingest.ingest.service import HttpIngest, telemetry_writer

INGEST_PATH: Final = "/ingest"
INGEST_SCOPE: Final = "telemetry:ingest"


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


async def http_ingest(request: Request) -> HttpIngest:
    """The writer, limits and metrics of the app."""
    settings: Settings = request.app.state.settings
    return HttpIngest(
        writer=telemetry_writer(request.app),
        options=ParseOptions.from_settings(settings),
        max_messages=settings.ingest_max_messages_per_request,
        metrics=ingest_metrics(request.app),
    )


HttpIngestDep = Annotated[HttpIngest, Depends(http_ingest)]
