"""The cvat-sync app and its service description."""

from fastapi import FastAPI

from cvat_sync.config import Settings
from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    return build_service_app(SERVICE, settings or Settings())


SERVICE = ServiceSpec(
    name="cvat-sync",
    package="cvat_sync",
    title="Mirante CVAT Sync",
    description="Mirrors CVAT jobs into Postgres: pull sync, HMAC-verified webhooks, audit log, web pages.",
    default_port=8001,
    settings_factory=Settings,
    app_factory=create_app,
    uses_mqtt=False,
)
