"""The telemetry-ingest app and its service description."""

from fastapi import FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings
from telemetry_ingest.config import Settings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    return build_service_app(SERVICE, settings or Settings())


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
