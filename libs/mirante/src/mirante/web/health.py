"""`/health` says the process is alive; `/ready` says its Postgres, Redis and MQTT broker answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ReadinessCheck = Callable[[], Awaitable[None]]
logger = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["operations"])


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


def redis_check(redis: Redis) -> ReadinessCheck:
    async def check() -> None:
        await redis.ping()

    return check


def tcp_check(url: str, default_port: int) -> ReadinessCheck:
    """Reachability of a broker by opening (and closing) a TCP connection to it."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port

    async def check() -> None:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()

    return check


async def _run(name: str, check: ReadinessCheck) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):  # not wait_for, which can lose a cancellation on 3.11
            await check()
    except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
        # The endpoint is unauthenticated: it names the kind of failure, the log keeps the details (hosts, ports).
        logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return {"ok": False, "error": "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@router.get("/health", summary="Liveness")
async def health(request: Request) -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok", "service": request.app.state.service_name}


@router.get("/ready", summary="Readiness", responses={503: {"description": "a dependency is unreachable"}})
async def ready(request: Request) -> JSONResponse:
    """Every dependency (Postgres, Redis, the MQTT broker where used) answers; 503 names the ones that do not."""
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    results = await asyncio.gather(*(_run(name, check) for name, check in checks.items()))
    report = dict(zip(checks, results, strict=True))
    ok = all(result["ok"] for result in results)
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": report}, status_code=200 if ok else 503)
