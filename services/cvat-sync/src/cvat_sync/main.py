"""The cvat-sync app and its service description."""

from fastapi import FastAPI

from cvat_sync.config import Settings
from cvat_sync.jobs.router import router as jobs_router
from cvat_sync.sync.router import router as sync_router
from cvat_sync.sync.runner import sync_worker
from cvat_sync.web.router import router as pages_router
from cvat_sync.webhooks.recount import count_refresh_worker
from cvat_sync.webhooks.router import router as webhooks_router
from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError("cvat-sync needs its own Settings")
    webhook_cap = settings.webhook_max_body_bytes
    return build_service_app(
        SERVICE,
        settings,
        # The webhook receiver first: it is the busiest route, and routes are matched in order.
        routers=[webhooks_router, jobs_router, sync_router, pages_router],
        body_limits={"/api/v1/webhooks/cvat": webhook_cap, "/cvat/webhook": webhook_cap},
        workers={"sync-runs": sync_worker, "annotation-recounts": count_refresh_worker},
    )


SERVICE = ServiceSpec(
    name="cvat-sync",
    package="cvat_sync",
    title="Mirante CVAT Sync",
    description="Mirrors CVAT jobs into Postgres: pull sync, HMAC-verified webhooks, audit log, web pages.",
    default_port=8001,
    settings_factory=Settings,
    app_factory=create_app,
)
