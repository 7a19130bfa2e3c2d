"""Who manages webhook subscriptions, and the target policy of their URLs, from the app's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from mirante.auth import Principal
from mirante.auth.policy import can_see
from mirante.auth.principal import AdminPrincipal
from mirante.web.errors import ForbiddenError
from rtls_cambus.deps import AppSettings
from rtls_cambus.outgoing.ssrf import TargetPolicy


async def get_policy(settings: AppSettings) -> TargetPolicy:
    return TargetPolicy(settings.webhook_allowed_targets)


async def suite_admin(principal: AdminPrincipal) -> Principal:
    """An admin of the whole suite: subscriptions carry every service's events, every tenant's among them, so an
    admin bound to one tenant may not read or manage them."""
    if not can_see(principal, None):
        raise ForbiddenError(
            f"webhook subscriptions carry the whole suite's events; an account of tenant {principal.tenant!r} "
            "cannot manage them"
        )
    return principal


Policy = Annotated[TargetPolicy, Depends(get_policy)]
SuiteAdmin = Annotated[Principal, Depends(suite_admin)]
