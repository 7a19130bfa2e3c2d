"""The dashboard: `/api/v1/dashboard/`, for viewers and up."""

from __future__ import annotations

from datetime import timedelta

from mirante.db import Session
from mirante.web.routing import SlashRouter
from vision_orchestrator.dashboard import service
from vision_orchestrator.dashboard.schemas import Dashboard
from vision_orchestrator.deps import USER_RATE_LIMITED, AppSettings, Viewer

router = SlashRouter(prefix="/api/v1/dashboard", tags=["dashboard"], responses=USER_RATE_LIMITED)


@router.get("/")
async def get_dashboard(session: Session, principal: Viewer, settings: AppSettings) -> Dashboard:
    """Totals of machines and inspections, the system's health (good, degraded or critical, with the reasons)
    and the performance of the inspections finished in the recent window."""
    return await service.dashboard(session, timedelta(minutes=settings.dashboard_window_minutes))
