"""The telemetry-ingest app and its service description."""

from fastapi import FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings
from telemetry_ingest.broker_auth.router import router as broker_auth_router
from telemetry_ingest.config import Settings
from telemetry_ingest.devices.router import router as devices_router
from telemetry_ingest.ingest.deps import INGEST_PATH
from telemetry_ingest.ingest.metrics import ingest_metrics
from telemetry_ingest.ingest.router import router as ingest_router
from telemetry_ingest.ingest.service import build_telemetry_writer
from telemetry_ingest.ingest.worker import mqtt_ingest_worker
from telemetry_ingest.ops.router import router as ops_router
from telemetry_ingest.queries.router import router as queries_router
from telemetry_ingest.retention.sweeper import retention_worker
from telemetry_ingest.tenancy.router import router as tenants_router
from telemetry_ingest.tenancy.worker import tenant_upgrade_worker
from telemetry_ingest.thresholds.cache import RuleCache
from telemetry_ingest.thresholds.router import router as thresholds_router


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError("telemetry-ingest needs its own Settings")
    app = build_service_app(
        SERVICE,
        settings,
        routers=[
            tenants_router,
            devices_router,
            broker_auth_router,
            thresholds_router,
            queries_router,
            ingest_router,
            ops_router,
        ],
        workers={
            "tenant-upgrade": tenant_upgrade_worker,
            "retention": retention_worker,
            "mqtt-ingest": mqtt_ingest_worker,
        },
        body_limits={INGEST_PATH: settings.ingest_max_body_bytes},
        on_startup=[build_state],
    )
    ingest_metrics(app)
    return app


def build_state(app: FastAPI) -> None:
    """The app's own objects, built in its lifespan: the threshold rule cache and the writer that shares it."""
    settings: Settings = app.state.settings
    rule_cache = RuleCache(ttl_seconds=settings.threshold_rule_cache_seconds)
    app.state.rule_cache = rule_cache
    app.state.telemetry_writer = build_telemetry_writer(settings, rule_cache)


SERVICE = ServiceSpec(
    name="telemetry-ingest",
    package="telemetry_ingest",
    title="Mirante Telemetry Ingest",
    description="Multi-tenant MQTT telemetry into per-tenant Postgres schemas, time-bucketed queries, ops panel.",
    default_port=8002,
    settings_factory=Settings,
    app_factory=create_app,
    uses_mqtt=True,
)
