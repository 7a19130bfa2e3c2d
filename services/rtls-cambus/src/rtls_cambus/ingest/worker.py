"""The ingest's background work, run in the app's lifespan: the MQTT subscriber, the gateway presence sweep
and the maintenance of the collection logs (day partitions, retention of readings and rejected messages).

The subscription is plain by default: each replica keeps a persistent session under its own fixed client id, so
messages queued while it is down wait for it, across a restart of the broker too. Every replica with a plain
subscription receives every message, so run the subscriber on one replica (`RTLS_CAMBUS_MQTT_INGEST_ENABLED`)
or give the replicas a share group (`RTLS_CAMBUS_MQTT_SHARE_GROUP`, see docs/architecture.md for what it costs on
Mosquitto 2.0). The sweep and the maintenance are safe on any number of replicas.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.app import wake_outbox_relay
from mirante.mqtt import Message, SubscriberRunner
from rtls_cambus.config import Settings
from rtls_cambus.ingest import partitions, repository
from rtls_cambus.ingest.metrics import IngestMetrics, ingest_metrics
from rtls_cambus.ingest.positions import ReadingsSink, positions_sink
from rtls_cambus.ingest.service import store_batch, sweep_silent_gateways
from rtls_cambus.ingest.topics import GATEWAYS_FILTER, camera_filters
from rtls_cambus.positions.service import engine_params

logger = logging.getLogger(__name__)

CLIENT_ID_PREFIX: Final = "rtls-cambus-"


def default_client_id(hostname: str | None = None) -> str:
    """`rtls-cambus-<hostname>`: stable across restarts of one host, different between replicas."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", hostname if hostname is not None else socket.gethostname())
    return (CLIENT_ID_PREFIX + (name or "local"))[:128]


def topic_filters(settings: Settings) -> list[str]:
    return [GATEWAYS_FILTER, *camera_filters(settings.cambus_tenant)]


@dataclass
class IngestPipeline:
    """The runner's batch handler: a batch's transaction, then its collection logs' (`store_batch`), both
    committed before the runner acknowledges the batch."""

    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: IngestMetrics
    max_readings: int
    forward: ReadingsSink
    committed_events: Callable[[], None] = lambda: None
    """Called after a commit that queued events: the app wakes its outbox relay, so the live feed and the
    other consumers get them now rather than at the relay's next poll."""

    async def __call__(self, messages: Sequence[Message]) -> None:
        received_at = datetime.now(UTC)
        # The blocks end in reverse order: the batch's transaction commits first, and the logs' only once it has.
        async with self.sessionmaker() as logs, self.sessionmaker() as session, logs.begin(), session.begin():
            outcome = await store_batch(
                session, logs, messages, received_at, max_readings=self.max_readings, forward=self.forward
            )
        if outcome.events:
            self.committed_events()
        self.metrics.record(outcome.kinds, outcome.readings, outcome.rejected)


def build_runner(app: FastAPI) -> SubscriberRunner:
    settings: Settings = app.state.settings
    pipeline = IngestPipeline(
        app.state.sessionmaker,
        ingest_metrics(app),
        settings.ingest_max_readings_per_message,
        positions_sink(engine_params(settings)),
        functools.partial(wake_outbox_relay, app),
    )
    app.state.ingest_pipeline = pipeline
    return SubscriberRunner(
        app.state.urls.mqtt_url,
        client_id=settings.mqtt_client_id or default_client_id(),
        topics=topic_filters(settings),
        group=settings.mqtt_share_group,
        handler=pipeline,
        batch_size=settings.ingest_batch_size,
        batch_interval=settings.ingest_batch_interval_seconds,
        receive_maximum=settings.mqtt_receive_maximum,
        session_expiry=settings.infra.mqtt.session_expiry_seconds,
        protocol=settings.infra.mqtt.protocol,
    )


async def mqtt_ingest_worker(app: FastAPI) -> None:
    """Run the subscriber for the app's lifetime (unless `mqtt_ingest_enabled` is off).

    When the app stops, a batch being stored may commit and be acknowledged (up to `mqtt_stop_grace_seconds`);
    one still being collected is left to the broker, which delivers it again.
    """
    settings: Settings = app.state.settings
    if not settings.mqtt_ingest_enabled:
        logger.info("MQTT ingest is disabled (RTLS_CAMBUS_MQTT_INGEST_ENABLED=false)")
        return
    runner = build_runner(app)
    metrics = ingest_metrics(app)
    app.state.mqtt_ingest_runner = runner
    metrics.watch(runner)
    logger.info("MQTT ingest: client id %s, subscriptions %s", runner.client_id, ", ".join(runner.subscriptions))
    try:
        await runner.run_until_cancelled(grace=settings.mqtt_stop_grace_seconds)
    finally:
        metrics.watch(None)
        if getattr(app.state, "mqtt_ingest_runner", None) is runner:
            app.state.mqtt_ingest_runner = None


async def sweep_once(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> list[str]:
    """Turn offline the gateways silent for `gateway_offline_after_seconds`; their MACs."""
    async with sessionmaker() as session, session.begin():
        silent = await sweep_silent_gateways(
            session, datetime.now(UTC), timedelta(seconds=settings.gateway_offline_after_seconds)
        )
    return [gateway.mac for gateway in silent]


async def presence_worker(app: FastAPI) -> None:
    """Every `presence_check_interval_seconds`, turn offline the gateways that went silent."""
    settings: Settings = app.state.settings
    while True:
        await asyncio.sleep(settings.presence_check_interval_seconds)
        await sweep_once(app.state.sessionmaker, settings)


async def maintain(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime | None = None
) -> tuple[list[str], list[str], int]:
    """Create the coming days' reading partitions, drop the expired ones and old rejected messages; the partitions
    created and dropped, and how many rejected messages were deleted."""
    now = now or datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        created = await partitions.ensure_partitions(session, now.date(), settings.reading_partitions_ahead_days)
        dropped = await partitions.drop_expired(session, now.date(), settings.reading_retention_days)
        deleted = await repository.delete_rejections_before(
            session, now - timedelta(days=settings.rejected_retention_days)
        )
    if created or dropped or deleted:
        logger.info(
            "gateway readings partitions: created %s, dropped %s; %d rejected messages deleted",
            created or "none",
            dropped or "none",
            deleted,
        )
    return created, dropped, deleted


async def maintenance_worker(app: FastAPI) -> None:
    """At start, then every `maintenance_interval_seconds`."""
    settings: Settings = app.state.settings
    while True:
        await maintain(app.state.sessionmaker, settings)
        await asyncio.sleep(settings.maintenance_interval_seconds)
