"""Request dependencies every feature of vision-orchestrator may use: settings, and who may call the user API.

Who may do what (users by their token, API keys by role and the scope `vision` or `*`), each user and API key
within its quota (`user_rate_limit`, 1,000 requests an hour by default, across the whole user API):

- viewers read machines, inspections and the inspection-type catalogue;
- operators also create, change and cancel inspections;
- admins also manage machines (and their credentials) and the catalogue.

The fleet belongs to no tenant: like a suite-wide identity, it is out of reach of a tenant-bound principal
(`mirante.auth.policy.check_suite_access`), who gets 403 whatever its role. Staff reach it. Machines call their own
routes with their credential (`machines.deps.MachineCaller`), never these.

This module imports only `config` and the library, so any feature can import it without an import loop.
"""

from typing import Annotated, Any, Final

from fastapi import Depends, Request

from mirante.auth import Principal, Role
from mirante.auth.policy import check_suite_access
from mirante.auth.principal import rate_limited
from vision_orchestrator.config import Settings

VISION_SCOPE: Final = "vision"
"""The scope an API key needs (besides its role) for the vision API; `*` includes it."""


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]


def check_vision_access(principal: Principal, role: Role) -> Principal:
    """`principal` when it may act with `role` on the fleet; 403 naming what it lacks otherwise."""
    return check_suite_access(principal, role, VISION_SCOPE, "the vision fleet")


USER_RATE_SCOPE: Final = "vision-users"
USER_RATE_LIMITED: Final[dict[int | str, dict[str, Any]]] = {
    429: {"description": "the caller's quota (`user_rate_limit`) is spent: retry after `Retry-After` seconds"}
}
"""Declared by every router of the user API, whose routes all count against the caller's quota."""


def _user_rate(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return settings.user_rate_limit


CountedPrincipal = Annotated[Principal, Depends(rate_limited(_user_rate, scope=USER_RATE_SCOPE))]
"""The caller, each request counted against its quota (`user_rate_limit` per user or API key, 429 beyond)."""


async def vision_viewer(principal: CountedPrincipal) -> Principal:
    return check_vision_access(principal, Role.viewer)


async def vision_operator(principal: CountedPrincipal) -> Principal:
    return check_vision_access(principal, Role.operator)


async def vision_admin(principal: CountedPrincipal) -> Principal:
    return check_vision_access(principal, Role.admin)


Viewer = Annotated[Principal, Depends(vision_viewer)]
Operator = Annotated[Principal, Depends(vision_operator)]
Admin = Annotated[Principal, Depends(vision_admin)]


def actor_of(principal: Principal) -> str:
    """How history rows name who acted: `user:<name>` or `api_key:<name>`."""
    return f"{principal.kind}:{principal.name}"
