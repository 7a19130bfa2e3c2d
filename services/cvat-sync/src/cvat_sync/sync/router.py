"""HTTP endpoints of the sync feature: start a sync run, list runs, follow one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Query, Request, status

from cvat_sync.deps import AppSettings, CvatOperator, CvatViewer
from cvat_sync.sync import service
from cvat_sync.sync.runner import wake_sync_worker
from cvat_sync.sync.schemas import SyncRunCreate, SyncRunRead
from mirante.db import Session
from mirante.types import Id64
from mirante.web.pagination import Page, Pagination

router = APIRouter(prefix="/api/v1/sync-runs", tags=["sync"])

RunStatus = Annotated[
    str | None,
    Query(alias="status", pattern="^(queued|running|success|error)$", description="only runs in this status"),
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        409: {"description": "a run is already queued or running"},
        503: {"description": "no CVAT credentials are configured"},
    },
)
async def start_sync_run(
    request: Request,
    session: Session,
    principal: CvatOperator,
    settings: AppSettings,
    background: BackgroundTasks,
    body: Annotated[SyncRunCreate | None, Body()] = None,
) -> SyncRunRead:
    """Queue a pull sync from CVAT (operators). It runs in the background, one at a time: 409 names the run
    already queued or running. Follow it with `GET /api/v1/sync-runs/{id}`."""
    wanted = body or SyncRunCreate()
    service.check_cvat_configured(settings)
    run = await service.start_run(
        session, filters=wanted.filters(), force=wanted.force, trigger=wanted.trigger, started_by=principal.name
    )
    # After the response, hence after the commit: the worker must find the run.
    background.add_task(wake_sync_worker, request.app)
    return SyncRunRead.from_run(run)


@router.get("")
async def list_sync_runs(
    session: Session, _: CvatViewer, pagination: Pagination, run_status: RunStatus = None
) -> Page[SyncRunRead]:
    """Sync runs, newest first."""
    runs, count = await service.list_runs(session, offset=pagination.offset, limit=pagination.limit, status=run_status)
    return pagination.build([SyncRunRead.from_run(run) for run in runs], count)


@router.get("/{run_id}")
async def get_sync_run(run_id: Id64, session: Session, _: CvatViewer) -> SyncRunRead:
    """One sync run with its counts so far (or final), progress and outcome."""
    return SyncRunRead.from_run(await service.get_run(session, run_id))
