"""The recording-storage app and its service description."""

from fastapi import FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings
from recording_storage.config import Settings
from recording_storage.health import router as health_router
from recording_storage.housekeeping.sweeper import sweeper_worker
from recording_storage.recordings.router import router as recordings_router
from recording_storage.recordings.signing import ContentUrlSigner
from recording_storage.statistics.router import router as statistics_router
from recording_storage.storage.select import build_storage, storage_closer
from recording_storage.uploads.router import CREATE_SESSION_PATH, UPLOADS_PATH
from recording_storage.uploads.router import router as uploads_router
from recording_storage.web.router import router as pages_router

# Multipart framing around the file part (boundaries, part headers) on top of the file's own bytes.
MULTIPART_ALLOWANCE = 64 * 1024


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError("recording-storage needs its own Settings")
    upload_limit = max(settings.max_video_bytes, settings.max_metadata_bytes) + MULTIPART_ALLOWANCE
    return build_service_app(
        SERVICE,
        settings,
        routers=[health_router, statistics_router, uploads_router, recordings_router, pages_router],
        workers={"sweeper": sweeper_worker, "storage-closer": storage_closer},
        # File bodies stream to storage and the service enforces each file's size itself; create-session's JSON
        # keeps the suite's small default (the longer prefix wins).
        body_limits={f"{UPLOADS_PATH}/": upload_limit, CREATE_SESSION_PATH: settings.infra.core.max_body_bytes},
        on_startup=[build_state],
    )


def build_state(app: FastAPI) -> None:
    """The storage backend (for the dependencies and the sweeper) and the content URL signer, on app.state."""
    settings: Settings = app.state.settings
    app.state.storage = build_storage(settings, app.state.sessionmaker)
    app.state.content_urls = ContentUrlSigner.from_secret(
        settings.resolved_content_url_secret(), settings.content_url_ttl_seconds
    )


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
