"""Request dependencies of the webhooks feature."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cvat_sync.deps import AppSettings
from cvat_sync.webhooks.service import rejection_throttle
from mirante.web.ratelimit import RateLimiter
from mirante.webhooks.audit import Throttle


async def get_rejection_throttle(request: Request, settings: AppSettings) -> Throttle | None:
    """The per-address limit of unauthenticated webhook requests, on the limiter the lifespan built (none in
    an app without one)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    return rejection_throttle(limiter, settings.webhook_rejected_rate)


RejectionThrottle = Annotated[Throttle | None, Depends(get_rejection_throttle)]
