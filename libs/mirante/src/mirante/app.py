"""Build a service's FastAPI app: the same operations surface, middleware and lifespan for all five.

A service passes its spec, settings, routers and background workers; everything else (engine, Redis, rate
limiter, token codec, outbox relay, identity router, health/ready/metrics, errors, request ids) is here once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from mirante.aio import cancel_all_and_wait, raise_if_cancel_requested
from mirante.auth.passwords import password_work
from mirante.auth.router import router as identity_router
from mirante.auth.tokens import TokenCodec
from mirante.backoff import Backoff
from mirante.bus.relay import OutboxRelay
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import resolve_urls
from mirante.runtime import freeze_startup_objects, thaw_startup_objects
from mirante.service import ServiceSpec
from mirante.settings import InfraSettings, ServiceSettings, SettingsError
from mirante.web import health
from mirante.web.apidocs import install_api_docs
from mirante.web.body_limit import BodyLimitMiddleware
from mirante.web.errors import UnhandledErrorMiddleware, install_error_handlers
from mirante.web.methods import install_method_not_allowed
from mirante.web.metrics import HttpMetrics, MetricsMiddleware, metrics_endpoint
from mirante.web.openapi import DescribedApp
from mirante.web.ratelimit import RateLimiter, rate_limit_prefix
from mirante.web.request_id import RequestIdMiddleware

logger = logging.getLogger(__name__)

Worker = Callable[[FastAPI], Awaitable[None]]
"""A long-running coroutine started with the app and cancelled when it stops."""

WORKER_RESTART_BASE_SECONDS = 1.0
WORKER_RESTART_CAP_SECONDS = 30.0


@dataclass(frozen=True)
class RuntimeUrls:
    database_url: str
    redis_url: str
    mqtt_url: str | None


def runtime_urls(infra: InfraSettings) -> RuntimeUrls:
    """URLs from the environment, else from a running `mirante up` stack; a clear error when neither exists."""
    stack = resolve_urls(infra.core.data_dir)
    database_url = infra.database.url or stack.database_url
    redis_url = infra.redis.url or stack.redis_url
    mqtt_url = infra.mqtt.url or stack.mqtt_url
    missing = [
        name for name, url in (("MIRANTE_DATABASE_URL", database_url), ("MIRANTE_REDIS_URL", redis_url)) if not url
    ]
    if missing or database_url is None or redis_url is None:
        raise SettingsError(
            f"{', '.join(missing)} not set and no `mirante up` stack is running: set them or run `mirante up`"
        )
    return RuntimeUrls(database_url=database_url, redis_url=redis_url, mqtt_url=mqtt_url)


async def _supervise(name: str, worker: Worker, app: FastAPI) -> None:
    """Keep a worker alive: a crash is logged and the worker restarted with growing delays."""
    backoff = Backoff(WORKER_RESTART_BASE_SECONDS, WORKER_RESTART_CAP_SECONDS)
    while True:
        raise_if_cancel_requested()
        try:
            await worker(app)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = backoff.next_delay()
            logger.exception("worker %s crashed; restarting in %.1f s", name, delay)
            await asyncio.sleep(delay)


async def _outbox_relay(app: FastAPI) -> None:
    relay = OutboxRelay(
        app.state.sessionmaker,
        schema=app.state.spec.schema,
        redis=app.state.redis,
        stream=app.state.spec.stream,
    )
    # Kept on the app so a worker that commits events can wake it (`wake_outbox_relay`) instead of leaving them
    # for the next poll.
    app.state.outbox_relay = relay
    try:
        await relay.run()
    finally:
        app.state.outbox_relay = None


def wake_outbox_relay(app: FastAPI) -> None:
    """Have the app's outbox relay look for events now (just after a commit that emitted some); a no-op when the
    app runs no relay."""
    relay: OutboxRelay | None = getattr(app.state, "outbox_relay", None)
    if relay is not None:
        relay.wake()


def build_service_app(
    spec: ServiceSpec,
    settings: ServiceSettings,
    *,
    routers: Sequence[APIRouter] = (),
    workers: Mapping[str, Worker] | None = None,
    body_limits: Mapping[str, int] | None = None,
    on_startup: Sequence[Callable[[FastAPI], None]] = (),
    version: str = "0.1.0",
) -> FastAPI:
    """The app for `spec`; `workers` run for the app's lifetime, `body_limits` raise caps per path prefix.

    `on_startup` builds the service's own objects (caches, writers) on `app.state`, in the lifespan, once the
    engine, sessionmaker and Redis client are there and before any worker starts.
    """
    infra = settings.infra
    all_workers: dict[str, Worker] = dict(workers or {})
    if spec.publishes_events:
        all_workers["outbox-relay"] = _outbox_relay

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra.check_production()
        urls = runtime_urls(infra)
        engine = create_engine(urls.database_url, infra.database)
        redis = Redis.from_url(urls.redis_url, socket_timeout=30, health_check_interval=30)
        app.state.urls = urls
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.redis = redis
        app.state.rate_limiter = RateLimiter(
            urls.redis_url, rate_limit_prefix(urls.database_url), pool_size=infra.redis.rate_limit_pool_size
        )
        password_work.configure(infra.core.password_hash_concurrency, infra.core.password_hash_queue)
        app.state.readiness_checks = {
            "database": health.database_check(engine),
            "redis": health.redis_check(redis),
        }
        if spec.uses_mqtt:
            if urls.mqtt_url is None:
                raise SettingsError("MIRANTE_MQTT_URL not set and no `mirante up` stack is running")
            app.state.readiness_checks["mqtt"] = health.tcp_check(urls.mqtt_url, 1883)
        for build in on_startup:
            build(app)
        tasks = [
            asyncio.create_task(_supervise(name, worker, app), name=f"{spec.name}:{name}")
            for name, worker in all_workers.items()
        ]
        freeze_startup_objects()
        logger.info("%s started", spec.name)
        try:
            yield
        finally:
            await cancel_all_and_wait(tasks)
            await redis.aclose()
            await app.state.rate_limiter.aclose()
            await engine.dispose()
            thaw_startup_objects()
            logger.info("%s stopped", spec.name)

    app = DescribedApp(
        title=spec.title,
        description=spec.description,
        version=version,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        # FastAPI's pages load their scripts from a CDN: `install_api_docs` serves Swagger UI from the package.
        docs_url=None,
        redoc_url=None,
    )
    app.state.spec = spec
    app.state.service_name = spec.name
    app.state.settings = settings
    app.state.core_settings = infra.core
    app.state.token_codec = TokenCodec.from_settings(infra.jwt)
    registry = CollectorRegistry()
    app.state.metrics_registry = registry

    install_error_handlers(app)
    install_method_not_allowed(app)
    install_api_docs(app, "/openapi.json")
    app.include_router(health.router)
    app.add_api_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.include_router(identity_router)
    for router in routers:
        app.include_router(router)

    # Added innermost first: request ids wrap everything so even rejected bodies carry one.
    app.add_middleware(BodyLimitMiddleware, default_limit=infra.core.max_body_bytes, limits=body_limits)
    app.add_middleware(UnhandledErrorMiddleware)
    if infra.core.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=infra.core.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry, spec.name))
    app.add_middleware(RequestIdMiddleware)
    return app
