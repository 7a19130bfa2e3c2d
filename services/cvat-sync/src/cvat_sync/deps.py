"""Request dependencies shared by the features of cvat-sync: settings, and who may call the API.

Users by their role, API keys by their role and the scope `cvat` (or `*`):

- viewers read jobs, their history and statistics, and sync runs;
- operators also start syncs;
- admins also read the webhook audit log.

The job mirror belongs to no tenant: like a suite-wide identity, it is out of reach of a tenant-bound principal
(`mirante.auth.policy.check_suite_access`), who gets 403 whatever its role. Staff reach it. CVAT calls its
webhook receiver with a signature, never with these.
"""

from typing import Annotated, Final

from fastapi import Depends, Request

from cvat_sync.config import Settings
from mirante.auth import CurrentPrincipal, Principal, Role
from mirante.auth.policy import check_suite_access

CVAT_SCOPE: Final = "cvat"
"""The scope an API key needs (besides its role) for the cvat-sync API; `*` includes it."""
MIRROR: Final = "the CVAT job mirror"


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]


async def cvat_viewer(principal: CurrentPrincipal) -> Principal:
    return check_suite_access(principal, Role.viewer, CVAT_SCOPE, MIRROR)


async def cvat_operator(principal: CurrentPrincipal) -> Principal:
    return check_suite_access(principal, Role.operator, CVAT_SCOPE, MIRROR)


async def cvat_admin(principal: CurrentPrincipal) -> Principal:
    return check_suite_access(principal, Role.admin, CVAT_SCOPE, MIRROR)


CvatViewer = Annotated[Principal, Depends(cvat_viewer)]
CvatOperator = Annotated[Principal, Depends(cvat_operator)]
CvatAdmin = Annotated[Principal, Depends(cvat_admin)]
