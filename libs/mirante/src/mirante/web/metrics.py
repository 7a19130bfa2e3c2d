"""Prometheus metrics: one registry per app (tests build many apps in one process).

`/metrics` names routes and, in some services, tenants and their volumes, so it is not public: with
`MIRANTE_METRICS_TOKEN` set it needs `Authorization: Bearer <token>`; without one it is open in development
and answers 404 in production.
"""

from __future__ import annotations

import hmac
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirante.settings import CoreSettings
from mirante.web.errors import NotFoundError, UnauthorizedError


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            ["service", "method", "route"],
            registry=registry,
        )
        self.service = service


def _route_template(scope: Scope) -> str:
    # Label by template, not raw path, so ids in URLs cannot explode the label set; the router leaves the
    # matched route in the scope.
    return str(getattr(scope.get("route"), "path", "unmatched"))


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = _route_template(scope)
            labels = (self.metrics.service, scope["method"], route)
            self.metrics.requests.labels(*labels, str(status)).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


def _check_metrics_access(request: Request) -> None:
    core: CoreSettings | None = getattr(request.app.state, "core_settings", None)
    token = core.metrics_token if core is not None else None
    if token is None or not token.get_secret_value():
        if core is not None and core.production:
            raise NotFoundError("metrics are not served without MIRANTE_METRICS_TOKEN in production")
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode("utf-8")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
        raise UnauthorizedError(
            "metrics need 'Authorization: Bearer <MIRANTE_METRICS_TOKEN>'",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


async def metrics_endpoint(request: Request) -> Response:
    """The app's metrics in the Prometheus text format, for a caller holding the metrics token."""
    _check_metrics_access(request)
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
