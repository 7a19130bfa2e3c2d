"""Request dependencies every feature of rtls-cambus may use: settings, and who may call the API.

Users by their role, API keys by their role and the scope `rtls` (or `*`): every route that takes a credential
goes through `Viewer`, `Operator`, `Admin` or a `Suite*` below, so a key of another service's scope gets 403
everywhere here.

This module imports only `config` of rtls-cambus, so any feature can import it without an import loop.

Incidents, incident rules, support groups and webhook subscriptions span the whole suite: rules open incidents
from any service's events (a telemetry tenant's threshold crossing among them) and subscriptions carry every
event. A principal bound to one tenant reaches none of them (403), whatever its role; `Suite*` admit the others
with the role they name.
"""

from typing import Annotated, Final

from fastapi import Depends, Request

from mirante.auth import CurrentPrincipal, Principal, Role
from mirante.auth.policy import can_see
from mirante.auth.principal import check_role, check_scope
from mirante.web.errors import ForbiddenError
from rtls_cambus.config import Settings

RTLS_SCOPE: Final = "rtls"
"""The scope an API key needs (besides its role) for the rtls-cambus API; `*` includes it."""


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]


def check_rtls_access(principal: Principal, role: Role) -> Principal:
    """`principal` when it may act with `role` here; 403 naming what it lacks otherwise."""
    check_scope(principal, RTLS_SCOPE)
    check_role(principal, role)
    return principal


async def rtls_viewer(principal: CurrentPrincipal) -> Principal:
    return check_rtls_access(principal, Role.viewer)


async def rtls_operator(principal: CurrentPrincipal) -> Principal:
    return check_rtls_access(principal, Role.operator)


async def rtls_admin(principal: CurrentPrincipal) -> Principal:
    return check_rtls_access(principal, Role.admin)


Viewer = Annotated[Principal, Depends(rtls_viewer)]
"""Any signed-in user, or an API key with the scope `rtls` (or `*`)."""
Operator = Annotated[Principal, Depends(rtls_operator)]
"""An operator or admin; an API key also needs the scope `rtls` (or `*`)."""
Admin = Annotated[Principal, Depends(rtls_admin)]
"""An admin; an API key also needs the scope `rtls` (or `*`)."""


def _suite_wide(principal: Principal, role: Role) -> Principal:
    if not can_see(principal, None):
        raise ForbiddenError(
            "incidents, incident rules, support groups and webhook subscriptions carry the whole suite's events, "
            f"every tenant's among them; an account of tenant {principal.tenant!r} cannot reach them"
        )
    return check_rtls_access(principal, role)


async def suite_viewer(principal: CurrentPrincipal) -> Principal:
    return _suite_wide(principal, Role.viewer)


async def suite_operator(principal: CurrentPrincipal) -> Principal:
    return _suite_wide(principal, Role.operator)


async def suite_admin(principal: CurrentPrincipal) -> Principal:
    return _suite_wide(principal, Role.admin)


SuiteViewer = Annotated[Principal, Depends(suite_viewer)]
"""Any signed-in principal not bound to a tenant (an API key with the scope `rtls`)."""
SuiteOperator = Annotated[Principal, Depends(suite_operator)]
"""An operator or admin not bound to a tenant (an API key with the scope `rtls`)."""
SuiteAdmin = Annotated[Principal, Depends(suite_admin)]
"""An admin not bound to a tenant (an API key with the scope `rtls`)."""
