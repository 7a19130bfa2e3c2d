"""Rate limits kept in Redis (moving window, shared by every replica) as FastAPI dependencies."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from mirante.web.errors import RateLimitedError

logger = logging.getLogger(__name__)


def limits_storage_uri(redis_url: str) -> str:
    """`redis://…`/`rediss://…`/`unix://…` as the `limits` async storage URI."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    if redis_url.startswith(("redis://", "rediss://")):
        return "async+" + redis_url
    raise ValueError(f"unsupported Redis URL for rate limiting: {redis_url!r}")


class RateLimiter:
    def __init__(self, redis_url: str, prefix: str = "mirante:ratelimit") -> None:
        self.storage = RedisStorage(limits_storage_uri(redis_url), implementation="redispy", key_prefix=prefix)
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, rate: RateLimitItem, *identifiers: str) -> None:
        """Count one hit; raise 429 with `Retry-After` when the window is full."""
        if await self.strategy.hit(rate, *identifiers):
            return
        stats = await self.strategy.get_window_stats(rate, *identifiers)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimitedError(
            f"too many requests: limit is {rate}; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def client_ip(request: Request) -> str:
    # The socket peer, never X-Forwarded-For: that header is spoofable unless a trusted proxy rewrites it.
    return request.client.host if request.client else "unknown"


def rate_limit(rate: str, key: Callable[[Request], str] = client_ip) -> Callable[[Request], Awaitable[None]]:
    """A dependency allowing `rate` (e.g. "10/minute") per `key(request)` on the route it guards."""
    item = parse(rate)

    async def dependency(request: Request) -> None:
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is None:
            return
        route = request.scope.get("route")
        await limiter.hit(item, getattr(route, "path", request.url.path), key(request))

    return dependency
