"""The recording-storage app and its service description."""

from fastapi import FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings
from recording_storage.config import Settings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    return build_service_app(SERVICE, settings or Settings())


SERVICE = ServiceSpec(
    name="recording-storage",
    package="recording_storage",
    title="Mirante Recording Storage",
    description="Receives large session recordings from desktop clients, resumably.",
    default_port=8005,
    settings_factory=Settings,
    app_factory=create_app,
    uses_mqtt=False,
)
