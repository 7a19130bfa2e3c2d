"""HTTP endpoint of the dashboard: `/api/v1/dashboard/summary`, viewers and up."""

from __future__ import annotations

from fastapi import APIRouter

from mirante.auth.policy import can_see, tenant_reach
from mirante.db import Session
from rtls_cambus.dashboard import service
from rtls_cambus.dashboard.schemas import DashboardSummary
from rtls_cambus.deps import Viewer
from rtls_cambus.positions.deps import Params

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


@router.get("/summary")
async def dashboard_summary(session: Session, principal: Viewer, params: Params) -> DashboardSummary:
    """What the site looks like now: people present by building and floor (heard within the freshness window),
    gateways and cameras by status, unresolved alerts by severity (those of the caller's tenant for a caller bound
    to one) and unresolved incidents by severity and status (null for a caller bound to a tenant)."""
    return await service.summary(session, params, reach=tenant_reach(principal), suite_wide=can_see(principal, None))
