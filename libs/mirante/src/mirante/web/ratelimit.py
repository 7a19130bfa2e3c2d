"""Rate limits kept in Redis (moving window, shared by every replica) as FastAPI dependencies.

Two kinds of bucket: `rate_limit` counts per route and client (an address, or any key of the request), and
`limit_caller` counts per authenticated caller (a user, an API key, a machine) over every route sharing one
scope, which is how an API states a quota ("1,000 requests an hour per user").

The limiter has its own bounded pool of Redis connections that makes callers wait for a free connection
(up to `POOL_WAIT_SECONDS`) instead of failing, so a burst queues rather than answering 500; when Redis does
not answer at all, the guarded request is refused with 503 and `Retry-After` (failing closed: a login limit
that vanished with Redis would let guessing run free).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from mirante.web.errors import RateLimitedError
from mirante.web.overload import ServiceBusyError

logger = logging.getLogger(__name__)
DEFAULT_CALLER_SCOPE = "caller"
DEFAULT_PREFIX = "mirante:ratelimit"
DEFAULT_POOL_SIZE = 20
POOL_WAIT_SECONDS = 5.0
SOCKET_TIMEOUT_SECONDS = 5.0
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


def limits_storage_uri(redis_url: str) -> str:
    """`redis://…`/`rediss://…`/`unix://…` as the `limits` async storage URI."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    if redis_url.startswith(("redis://", "rediss://")):
        return "async+" + redis_url
    raise ValueError(f"unsupported Redis URL for rate limiting: {redis_url!r}")


def rate_limit_prefix(database_url: str) -> str:
    """The Redis key prefix of the buckets of the suite using `database_url`.

    Callers are counted by their ids (users, API keys, machines), which are only unique within one database:
    deployments (or test databases) that share a Redis would otherwise draw on each other's buckets.
    """
    name = make_url(database_url).database or "postgres"
    return f"{DEFAULT_PREFIX}:{name}"


class RateLimiter:
    def __init__(self, redis_url: str, prefix: str = DEFAULT_PREFIX, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=pool_size,
            timeout=POOL_WAIT_SECONDS,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        )
        self.storage = RedisStorage(
            limits_storage_uri(redis_url),
            implementation="redispy",
            key_prefix=prefix,
            wrap_exceptions=True,
            connection_pool=self.pool,  # type: ignore[arg-type]  # limits types its options as scalars
        )
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, rate: RateLimitItem, *identifiers: str) -> None:
        """Count one hit; 429 with `Retry-After` when the window is full, 503 when Redis cannot be reached."""
        try:
            allowed = await self.strategy.hit(rate, *identifiers)
            stats = None if allowed else await self.strategy.get_window_stats(rate, *identifiers)
        except (StorageError, RedisError, OSError) as exc:
            logger.warning("rate limiter unavailable: %s: %s", type(exc).__name__, exc)
            raise ServiceBusyError(
                "the rate limiter is unavailable; retry shortly", UNAVAILABLE_RETRY_AFTER_SECONDS
            ) from None
        if stats is None:
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimitedError(
            f"too many requests: limit is {rate}; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    async def aclose(self) -> None:
        """Close the limiter's connections."""
        await self.pool.aclose()


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


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> RateLimitItem:
    """`rate` ("100/minute", "1000 per hour", "10/2 seconds") as a rate; a clear `ValueError` when unreadable.

    Settings validators call it so a mistyped rate stops the service at start rather than at the first request.
    """
    try:
        return parse(rate)
    except ValueError:
        raise ValueError(
            f"{rate!r} is not a rate: write it as '<count>/<period>', e.g. '100/minute' or '1000/hour'"
        ) from None


async def limit_caller(
    request: Request,
    rate: str | RateLimitItem | None,
    kind: str,
    caller_id: str | int,
    *,
    scope: str = DEFAULT_CALLER_SCOPE,
) -> None:
    """Count one request of the caller `(kind, caller_id)` against `rate`: 429 with `Retry-After` beyond it.

    The bucket belongs to the caller, not to the route: every route that calls this with the same `scope`
    draws on it, so `100/minute` for a machine means a hundred requests a minute whatever it asks for. A
    `rate` of None leaves the caller unlimited (webhooks, an exempt kind); so does an app without a limiter.
    """
    if rate is None:
        return
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    item = parse_rate(rate) if isinstance(rate, str) else rate
    await limiter.hit(item, scope, kind, str(caller_id))
