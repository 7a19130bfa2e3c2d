"""The vision-orchestrator app and its service description."""

from fastapi import FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings
from vision_orchestrator.catalogue.router import router as catalogue_router
from vision_orchestrator.config import Settings
from vision_orchestrator.dashboard.router import router as dashboard_router
from vision_orchestrator.dispatch.router import inspection_moves
from vision_orchestrator.dispatch.router import router as orchestrator_router
from vision_orchestrator.dispatch.service import build_dispatcher, dispatcher_worker
from vision_orchestrator.heartbeats.workers import partition_worker, presence_worker
from vision_orchestrator.inspections.router import router as inspections_router
from vision_orchestrator.machines.router import router as machines_router
from vision_orchestrator.monitoring.router import router as monitoring_router
from vision_orchestrator.web.router import router as pages_router
from vision_orchestrator.webhooks.router import router as webhooks_router


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError("vision-orchestrator needs its own Settings")
    return build_service_app(
        SERVICE,
        settings,
        routers=[
            machines_router,
            monitoring_router,
            inspections_router,
            inspection_moves,
            orchestrator_router,
            catalogue_router,
            webhooks_router,
            dashboard_router,
            pages_router,
        ],
        workers={
            "heartbeat-partitions": partition_worker,
            "machine-presence": presence_worker,
            "dispatcher": dispatcher_worker,
        },
        on_startup=[build_dispatcher],
    )


SERVICE = ServiceSpec(
    name="vision-orchestrator",
    package="vision_orchestrator",
    title="Mirante Vision Orchestrator",
    description="Registers vision machines, queues and distributes inspections, takes heartbeats and results.",
    default_port=8003,
    settings_factory=Settings,
    app_factory=create_app,
    uses_mqtt=False,
)
