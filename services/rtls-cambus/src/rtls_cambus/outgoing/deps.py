"""The target policy of webhook URLs, from the app's settings. Who manages subscriptions: `deps.SuiteAdmin`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from rtls_cambus.deps import AppSettings
from rtls_cambus.outgoing.ssrf import TargetPolicy


async def get_policy(settings: AppSettings) -> TargetPolicy:
    return TargetPolicy(settings.webhook_allowed_targets)


Policy = Annotated[TargetPolicy, Depends(get_policy)]
