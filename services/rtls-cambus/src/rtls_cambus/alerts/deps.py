"""Who reaches alert rules and alerts.

Rules act on every service's events, every tenant's among them, so they are closed to a tenant-bound account (as
webhook subscriptions are). Alerts carry the tenant of the event they were raised from (none for the site's own:
presence, gateways, cameras): an account bound to a tenant reaches only that tenant's alerts, and others answer
404 as if they did not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mirante.auth import Principal
from mirante.auth.policy import can_see, tenant_reach
from rtls_cambus.alerts.errors import SuiteWideError
from rtls_cambus.deps import Operator, Viewer


def _suite_wide(principal: Principal) -> Principal:
    if not can_see(principal, None):
        raise SuiteWideError(principal.tenant)
    return principal


async def suite_viewer(principal: Viewer) -> Principal:
    return _suite_wide(principal)


async def suite_operator(principal: Operator) -> Principal:
    return _suite_wide(principal)


async def viewer_reach(principal: Viewer) -> str | None:
    """The tenant whose alerts the caller reaches; None: every alert."""
    return tenant_reach(principal)


SuiteViewer = Annotated[Principal, Depends(suite_viewer)]
SuiteOperator = Annotated[Principal, Depends(suite_operator)]
Reach = Annotated[str | None, Depends(viewer_reach)]
