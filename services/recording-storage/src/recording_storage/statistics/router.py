"""`GET /api/v1/uploads/statistics`: upload volume, failures and uploads in progress (operators)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from mirante.db import Session
from recording_storage.recordings.deps import READ_SCOPE, RecordingOperator
from recording_storage.statistics import service
from recording_storage.statistics.schemas import DaysQuery, UploadStatistics

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credentials, or credentials that are not valid"},
    403: {"description": f"below the operator role, or an API key without the scope {READ_SCOPE!r}"},
}


@router.get("/statistics", responses=RESPONSES)
async def upload_statistics(
    session: Session, caller: RecordingOperator, response: Response, days: DaysQuery = 30
) -> UploadStatistics:
    """Per UTC day: recordings finished, their bytes, failed uploads (sessions that expired unfinished, finishes
    refused) by reason; and the sessions in progress now. A tenant-bound caller sees its tenant's figures."""
    response.headers["Cache-Control"] = "no-store"
    return await service.upload_statistics(session, caller, days)
