"""The rtls-cambus app and its service description."""

from fastapi import FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings
from rtls_cambus.config import Settings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    return build_service_app(SERVICE, settings or Settings())


SERVICE = ServiceSpec(
    name="rtls-cambus",
    package="rtls_cambus",
    title="Mirante RTLS CAM-BUS",
    description="BLE gateways and cameras over MQTT: positions, presence, alerts, incidents, webhooks, Chatwoot.",
    default_port=8004,
    settings_factory=Settings,
    app_factory=create_app,
    uses_mqtt=True,
)
