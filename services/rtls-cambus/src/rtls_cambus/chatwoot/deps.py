"""Request dependencies of the Chatwoot webhook: the limits of an anonymous route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mirante.web.ratelimit import RateLimiter, client_ip
from mirante.webhooks.audit import Throttle
from rtls_cambus.chatwoot.receiver import RATE_SCOPE, rejection_throttle
from rtls_cambus.deps import AppSettings


async def get_rejection_throttle(request: Request, settings: AppSettings) -> Throttle | None:
    """The per-address limit of requests that fail authentication (none in an app without a limiter)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    return rejection_throttle(limiter, settings.chatwoot_webhook_rejected_rate)


async def limit_webhook_requests(request: Request, settings: AppSettings) -> None:
    """Every request counts against its address's limit, before anything else is done with it."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.hit(settings.chatwoot_webhook_rate, RATE_SCOPE, client_ip(request))


RejectionThrottle = Annotated[Throttle | None, Depends(get_rejection_throttle)]
WebhookRateLimit = Depends(limit_webhook_requests)
