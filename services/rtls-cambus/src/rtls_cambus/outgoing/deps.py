"""The target policy of webhook URLs, from the app's settings, and the types subscriptions name. Who manages
subscriptions: `deps.SuiteAdmin`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mirante.bus import TypeInterest
from rtls_cambus.deps import AppSettings
from rtls_cambus.outgoing.ssrf import TargetPolicy


async def get_policy(settings: AppSettings) -> TargetPolicy:
    return TargetPolicy(settings.webhook_allowed_targets)


Policy = Annotated[TargetPolicy, Depends(get_policy)]


async def get_webhook_interest(request: Request) -> TypeInterest:
    interest: TypeInterest = request.app.state.webhook_interest
    return interest


WebhookInterest = Annotated[TypeInterest, Depends(get_webhook_interest)]
"""The types subscriptions name, as the dispatcher's consumer knows them; a change to subscriptions bumps it."""
