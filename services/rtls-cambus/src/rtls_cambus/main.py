"""The rtls-cambus app and its service description."""

from fastapi import FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import ServiceSettings
from rtls_cambus.alerts.engine import alert_checks_worker, alert_events_worker, install_alert_engine
from rtls_cambus.alerts.router import router as alerts_router
from rtls_cambus.buildings.router import router as buildings_router
from rtls_cambus.chatwoot.router import WEBHOOK_PATH as CHATWOOT_WEBHOOK_PATH
from rtls_cambus.chatwoot.router import router as chatwoot_router
from rtls_cambus.chatwoot.sync import chatwoot_worker
from rtls_cambus.config import Settings
from rtls_cambus.dashboard.router import router as dashboard_router
from rtls_cambus.devices.router import router as devices_router
from rtls_cambus.floor_plans.router import FLOOR_PLANS_PATH
from rtls_cambus.floor_plans.router import router as floor_plans_router
from rtls_cambus.incidents.engine import incident_rules_worker, install_rule_interest
from rtls_cambus.incidents.router import ATTACHMENTS_PATH_PREFIX
from rtls_cambus.incidents.router import router as incidents_router
from rtls_cambus.ingest.metrics import ingest_metrics
from rtls_cambus.ingest.router import router as ingest_router
from rtls_cambus.ingest.worker import maintenance_worker, mqtt_ingest_worker, presence_worker
from rtls_cambus.notifications.router import router as notifications_router
from rtls_cambus.notifications.worker import notifications_worker
from rtls_cambus.outgoing.dispatcher import webhook_worker
from rtls_cambus.outgoing.interest import install_webhook_interest
from rtls_cambus.outgoing.router import router as webhooks_router
from rtls_cambus.people.router import router as people_router
from rtls_cambus.positions.router import router as positions_router
from rtls_cambus.positions.worker import sweep_silent_tags
from rtls_cambus.reports.router import router as reports_router
from rtls_cambus.retention import retention_worker
from rtls_cambus.tags.router import router as tags_router
from rtls_cambus.web.router import router as web_router
from rtls_cambus.zones.router import router as zones_router

# Room for the multipart framing around the largest image.
_MULTIPART_SLACK = 64 * 1024


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests pass their own)."""
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError("rtls-cambus needs its own Settings")
    app = build_service_app(
        SERVICE,
        settings,
        routers=[
            buildings_router,
            floor_plans_router,
            zones_router,
            people_router,
            tags_router,
            ingest_router,
            devices_router,
            positions_router,
            web_router,
            webhooks_router,
            incidents_router,
            dashboard_router,
            reports_router,
            chatwoot_router,
            notifications_router,
            alerts_router,
        ],
        workers={
            "mqtt-ingest": mqtt_ingest_worker,
            "gateway-presence": presence_worker,
            "ingest-maintenance": maintenance_worker,
            "position-sweep": sweep_silent_tags,
            "webhooks": webhook_worker,
            "incident-rules": incident_rules_worker,
            "chatwoot-sync": chatwoot_worker,
            "mail-notifications": notifications_worker,
            "log-retention": retention_worker,
            "alert-events": alert_events_worker,
            "alert-checks": alert_checks_worker,
        },
        body_limits={
            FLOOR_PLANS_PATH: settings.floor_plan_max_bytes + _MULTIPART_SLACK,
            ATTACHMENTS_PATH_PREFIX: settings.incident_attachment_max_bytes + _MULTIPART_SLACK,
            CHATWOOT_WEBHOOK_PATH: settings.chatwoot_webhook_max_body_bytes,
        },
        on_startup=[install_alert_engine, install_webhook_interest, install_rule_interest],
    )
    ingest_metrics(app)
    return app


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
