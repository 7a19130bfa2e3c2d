"""The MQTT ingest worker: a `SubscriberRunner` on the telemetry topics, feeding `MqttIngestPipeline`.

The subscription is plain by default: each replica keeps a persistent session under its own fixed client id, so
messages queued while it is down wait for it, across a restart of the broker too. With `mqtt_share_group` set,
replicas subscribe as one shared-subscription group (`$share/<group>/...`) and the broker splits the messages
among them; Mosquitto 2.0 does not restore such subscriptions after its own restart (docs/architecture.md).
A batch is handed over at `ingest_batch_size` messages or `ingest_batch_interval` seconds after its first
message, whichever comes first, and acknowledged only once committed.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Final

from fastapi import FastAPI

from mirante.mqtt import SubscriberRunner
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest.metrics import ingest_metrics
from telemetry_ingest.ingest.pipeline import MqttIngestPipeline, ParseOptions
from telemetry_ingest.ingest.service import telemetry_writer

logger = logging.getLogger(__name__)

TOPIC_FILTER: Final = "tenants/+/devices/+/sensors/+"
CLIENT_ID_PREFIX: Final = "telemetry-ingest-"


def default_client_id(hostname: str | None = None) -> str:
    """`telemetry-ingest-<hostname>`: stable across restarts of one host, different between replicas."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", hostname if hostname is not None else socket.gethostname())
    return (CLIENT_ID_PREFIX + (name or "local"))[:128]


def build_runner(app: FastAPI) -> SubscriberRunner:
    """The subscriber of `app`, configured from its settings."""
    settings: Settings = app.state.settings
    mqtt = settings.infra.mqtt
    pipeline = MqttIngestPipeline(
        app.state.sessionmaker,
        telemetry_writer(app),
        ingest_metrics(app),
        ParseOptions.from_settings(settings),
    )
    return SubscriberRunner(
        app.state.urls.mqtt_url,
        client_id=settings.mqtt_client_id or default_client_id(),
        topics=[TOPIC_FILTER],
        group=settings.mqtt_share_group,
        handler=pipeline,
        batch_size=settings.ingest_batch_size,
        batch_interval=settings.ingest_batch_interval_seconds,
        receive_maximum=settings.mqtt_receive_maximum,
        session_expiry=mqtt.session_expiry_seconds,
        protocol=mqtt.protocol,
    )


async def mqtt_ingest_worker(app: FastAPI) -> None:
    """Run the subscriber for the app's lifetime (unless `mqtt_ingest_enabled` is off).

    When the app stops, a batch being stored is allowed to commit and be acknowledged (up to
    `mqtt_stop_grace_seconds`); one still being collected is left to the broker, which delivers it again.
    """
    settings: Settings = app.state.settings
    if not settings.mqtt_ingest_enabled:
        logger.info("MQTT ingest is disabled (TELEMETRY_INGEST_MQTT_INGEST_ENABLED=false)")
        return
    runner = build_runner(app)
    metrics = ingest_metrics(app)
    app.state.mqtt_ingest_runner = runner
    metrics.watch(runner)
    logger.info(
        "MQTT ingest: client id %s, subscriptions %s, batches of %d or %.3f s",
        runner.client_id,
        ", ".join(runner.subscriptions),
        runner.batch_size,
        runner.batch_interval,
    )
    try:
        await runner.run_until_cancelled(grace=settings.mqtt_stop_grace_seconds)
    finally:
        metrics.watch(None)
        if getattr(app.state, "mqtt_ingest_runner", None) is runner:
            app.state.mqtt_ingest_runner = None
