"""Request dependencies every feature of rtls-cambus may use.

This module imports only `config` of rtls-cambus, so any feature can import it without an import loop.

Incidents, incident rules, support groups and webhook subscriptions span the whole suite: rules open incidents
from any service's events (a telemetry tenant's threshold crossing among them) and subscriptions carry every
event. A principal bound to one tenant reaches none of them (403), whatever its role; `Suite*` admit the others
with the role they name.
"""

from typing import Annotated

from fastapi import Depends, Request

from mirante.auth import CurrentPrincipal, Principal
from mirante.auth.policy import can_see
from mirante.auth.principal import AdminPrincipal, OperatorPrincipal
from mirante.web.errors import ForbiddenError
from rtls_cambus.config import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]


def _suite_wide(principal: Principal) -> Principal:
    if not can_see(principal, None):
        raise ForbiddenError(
            "incidents, incident rules, support groups and webhook subscriptions carry the whole suite's events, "
            f"every tenant's among them; an account of tenant {principal.tenant!r} cannot reach them"
        )
    return principal


async def suite_viewer(principal: CurrentPrincipal) -> Principal:
    return _suite_wide(principal)


async def suite_operator(principal: OperatorPrincipal) -> Principal:
    return _suite_wide(principal)


async def suite_admin(principal: AdminPrincipal) -> Principal:
    return _suite_wide(principal)


SuiteViewer = Annotated[Principal, Depends(suite_viewer)]
"""Any signed-in principal not bound to a tenant."""
SuiteOperator = Annotated[Principal, Depends(suite_operator)]
"""An operator or admin not bound to a tenant."""
SuiteAdmin = Annotated[Principal, Depends(suite_admin)]
"""An admin not bound to a tenant."""
