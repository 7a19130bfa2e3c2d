"""MQTT ingest end to end: the app's worker subscribed to the real broker, storing into the real database.

Each test runs its own worker under a unique client id and shared-subscription group, and removes its broker
session afterwards. The worker subscribes to `tenants/+/...`, so it also receives whatever other tests publish
meanwhile: tests use tenants of their own and look only at those (other tenants end up unrouted).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.devstack import StackUrls
from mirante.devstack.mqtt_broker import EmbeddedMqttBroker
from mirante.mqtt import Publisher
from mirante.settings import InfraSettings
from mirante.testing.mqtt import MqttSessions, running, unique_client_id, wait_for_scalar
from mirante.testing.streams import wait_until
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest import writer as writer_module
from telemetry_ingest.ingest.worker import TOPIC_FILTER, default_client_id
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.rows import ReadingRow
from telemetry_ingest.thresholds.cache import RuleCache
from telemetry_ingest.thresholds.evaluation import evaluate_thresholds

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.devices import DeviceFleet  # noqa: E402

TenantFactory = Callable[..., Awaitable[str]]
AppFactory = Callable[..., FastAPI]

NOW = datetime.now(UTC).replace(microsecond=0)
pytestmark = pytest.mark.usefixtures("mqtt5_broker")
CLIENT_PREFIX = "telemetry-ingest-test"


@pytest.fixture
def make_app(mqtt_sessions: MqttSessions) -> AppFactory:
    """`make_app(client_id)`: an app whose MQTT worker uses `client_id` and this test's own subscription group;
    the broker sessions of those client ids are removed after the test."""
    group = f"ingest-test-{uuid.uuid4().hex[:10]}"

    def make(client_id: str, **overrides: Any) -> FastAPI:
        options: dict[str, Any] = {
            "mqtt_client_id": mqtt_sessions.track(client_id),
            "mqtt_share_group": group,
            "ingest_batch_size": 200,
            "ingest_batch_interval_seconds": 0.05,
            "upgrade_tenants_on_start": False,
            "retention_enabled": False,
        }
        options.update(overrides)
        return create_app(Settings(infra=mqtt_sessions.infra, **options))

    return make


def topic(tenant: str, device: str = "dev-1", sensor: str = "temperature") -> str:
    return f"tenants/{tenant}/devices/{device}/sensors/{sensor}"


def reading(value: Any, minutes_ago: float, unit: str = "celsius") -> dict[str, Any]:
    return {"value": value, "unit": unit, "timestamp": (NOW - timedelta(minutes=minutes_ago)).isoformat()}


def readings_count(slug: str) -> str:
    return f'SELECT count(*) FROM "{schema_for(slug)}".readings'


def rejected_count(slug: str) -> str:
    return f'SELECT count(*) FROM "{schema_for(slug)}".rejected_readings'


async def test_published_readings_are_stored_rejected_or_unrouted(
    make_app: AppFactory, make_tenant: TenantFactory, mqtt_publisher: Publisher, db_engine: AsyncEngine
) -> None:
    slug = await make_tenant(committed=True)
    missing = f"{slug}-nobody"
    app = make_app(unique_client_id(CLIENT_PREFIX))
    async with running(app) as runner:
        assert runner.subscriptions == (f"$share/{app.state.settings.mqtt_share_group}/{TOPIC_FILTER}",)
        await mqtt_publisher.publish(topic(slug, "ahu-1"), orjson.dumps(reading(21.5, 3)))
        await mqtt_publisher.publish(topic(slug, "ahu-1"), orjson.dumps([reading(22, 2), reading(22.5, 1)]))
        await mqtt_publisher.publish(
            topic(slug, "ahu-2", "co2"), orjson.dumps([reading(600, 1, "ppm"), {"value": "x"}])
        )
        await mqtt_publisher.publish(topic(slug, "ahu-2", "co2"), b"{broken")
        await mqtt_publisher.publish(topic(missing), orjson.dumps(reading(1, 1)))
        # Late: an older reading arriving last must not replace the latest value.
        await mqtt_publisher.publish(topic(slug, "ahu-1"), orjson.dumps(reading(10, 30)))

        await wait_for_scalar(db_engine, readings_count(slug), 5)
        await wait_for_scalar(db_engine, rejected_count(slug), 2)
        await wait_for_scalar(
            db_engine, "SELECT count(*) FROM telemetry_ingest.unrouted_messages WHERE topic = :t", 1, t=topic(missing)
        )
        await wait_until(lambda: runner.acked >= 6, within=15)

    async with db_engine.connect() as connection:
        latest = await connection.execute(
            text(f'SELECT device_id, sensor, ts, value FROM "{schema_for(slug)}".latest_readings ORDER BY 1, 2')
        )
        assert [tuple(row) for row in latest] == [
            ("ahu-1", "temperature", NOW - timedelta(minutes=1), 22.5),
            ("ahu-2", "co2", NOW - timedelta(minutes=1), 600.0),
        ]
        reasons = await connection.scalars(
            text(f'SELECT reason FROM "{schema_for(slug)}".rejected_readings ORDER BY reason')
        )
        assert [reason.split(":")[0] for reason in reasons] == ["malformed JSON", "reading 1"]
        registered = await connection.scalar(
            text("SELECT count(*) FROM telemetry_ingest.outbox WHERE type = :type AND tenant = :t"),
            {"type": "telemetry.device.registered", "t": slug},
        )
        assert registered == 2

    registry: CollectorRegistry = app.state.metrics_registry
    assert registry.get_sample_value("telemetry_readings_written_total", {"tenant": slug}) == 5
    assert registry.get_sample_value("telemetry_readings_received_total", {"tenant": slug}) == 7
    assert (
        registry.get_sample_value("telemetry_readings_rejected_total", {"tenant": slug, "reason": "malformed_json"})
        == 1
    )
    assert registry.get_sample_value("telemetry_mqtt_subscriber_acked_messages") == 0  # the worker has stopped
    assert getattr(app.state, "mqtt_ingest_runner", None) is None


async def test_a_redelivered_message_is_stored_once_and_counted_as_duplicate(
    make_app: AppFactory, make_tenant: TenantFactory, mqtt_publisher: Publisher, db_engine: AsyncEngine
) -> None:
    slug = await make_tenant(committed=True)
    payload = orjson.dumps([reading(1, 2), reading(2, 1)])
    app = make_app(unique_client_id(CLIENT_PREFIX))
    async with running(app) as runner:
        await mqtt_publisher.publish(topic(slug), payload)
        await wait_for_scalar(db_engine, readings_count(slug), 2)
        await mqtt_publisher.publish(topic(slug), payload)
        registry: CollectorRegistry = app.state.metrics_registry
        await wait_until(
            lambda: registry.get_sample_value("telemetry_readings_duplicate_total", {"tenant": slug}) == 2, within=15
        )
        assert runner.handler_failures == 0
    assert await wait_for_scalar(db_engine, readings_count(slug), 2) == 2


async def test_a_failed_batch_is_delivered_again_and_nothing_is_lost(
    make_app: AppFactory,
    make_tenant: TenantFactory,
    mqtt_publisher: Publisher,
    db_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slug = await make_tenant(committed=True)
    evaluate = evaluate_thresholds
    failures: list[str] = []

    async def fail_once_for_this_tenant(
        session: Any, tenant: Tenant, rows: Sequence[ReadingRow], rules: RuleCache
    ) -> int:
        # After the readings were inserted in the batch's transaction: the failure must undo them.
        if tenant.slug == slug and not failures:
            failures.append(tenant.slug)
            raise RuntimeError("simulated failure inside the write")
        return await evaluate(session, tenant, rows, rules)

    monkeypatch.setattr(writer_module, "evaluate_thresholds", fail_once_for_this_tenant)
    app = make_app(unique_client_id(CLIENT_PREFIX))
    async with running(app) as runner:
        await mqtt_publisher.publish_many(
            (topic(slug, f"dev-{index % 4}"), orjson.dumps(reading(index, index / 10))) for index in range(40)
        )
        await wait_for_scalar(db_engine, readings_count(slug), 40)
        assert runner.handler_failures == 1
        assert failures == [slug]
        registry: CollectorRegistry = app.state.metrics_registry
        assert registry.get_sample_value("telemetry_mqtt_subscriber_failed_batches") == 1
        # Counted once the batch's commit returned, a moment after its rows became visible.
        written = {"tenant": slug}
        await wait_until(
            lambda: registry.get_sample_value("telemetry_readings_written_total", written) == 40, within=15
        )
        assert registry.get_sample_value("telemetry_readings_duplicate_total", {"tenant": slug}) is None


async def test_a_restart_while_devices_publish_loses_and_doubles_nothing(
    make_app: AppFactory, make_tenant: TenantFactory, mirante_urls: StackUrls, db_engine: AsyncEngine
) -> None:
    tenants = [await make_tenant(committed=True), await make_tenant(committed=True)]
    fleet = DeviceFleet(tenants, 6, seed=7, timestamp_format="mixed")
    client_id = unique_client_id(CLIENT_PREFIX)
    publishing: asyncio.Task[Any] | None = None

    first = make_app(client_id)
    async with running(first) as runner:
        publishing = asyncio.create_task(
            fleet.publish(mirante_urls.mqtt_url, count=2400, readings_per_message=6, rate=1500, bad_fraction=0.05)
        )
        await wait_until(lambda: runner.acked >= 20, within=15)
    # Stopped while devices keep publishing: what arrives meanwhile waits in the broker's session.
    assert not publishing.done()
    result = await publishing
    assert len(result.expected) == 2400

    second = make_app(client_id)
    async with running(second) as resumed:
        assert resumed.session_present is True
        total = " + ".join(f"({readings_count(slug)})" for slug in tenants)
        await wait_for_scalar(db_engine, f"SELECT {total}", len(result.expected), within=30)

    stored: set[tuple[str, str, str, datetime]] = set()
    async with db_engine.connect() as connection:
        for slug in tenants:
            rows = await connection.execute(text(f'SELECT device_id, sensor, ts FROM "{schema_for(slug)}".readings'))
            stored.update((slug, row.device_id, row.sensor, row.ts) for row in rows)
        rejected = 0
        for slug in tenants:
            rejected += int(await connection.scalar(text(rejected_count(slug))) or 0)
        unrouted = await connection.scalar(
            text("SELECT count(*) FROM telemetry_ingest.unrouted_messages WHERE topic LIKE :prefix"),
            {"prefix": f"tenants/{fleet.unknown_tenant}/%"},
        )
    assert stored == result.expected
    bad_in_tenants = sum(count for kind, count in result.bad.items() if kind != "unknown_tenant")
    assert rejected == bad_in_tenants
    assert unrouted == result.bad["unknown_tenant"]


async def test_the_worker_can_be_switched_off(make_app: AppFactory) -> None:
    app = make_app(unique_client_id(CLIENT_PREFIX), mqtt_ingest_enabled=False)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.2)
        assert getattr(app.state, "mqtt_ingest_runner", None) is None


def test_the_default_client_id_is_stable_per_host_and_valid() -> None:
    assert default_client_id("ingest-0.ingest.svc") == "telemetry-ingest-ingest-0.ingest.svc"
    assert default_client_id("weird host/1") == "telemetry-ingest-weird-host-1"
    assert default_client_id() == default_client_id()
    assert len(default_client_id("x" * 300)) == 128


def test_batches_cannot_outgrow_the_receive_maximum(infra_settings: InfraSettings) -> None:
    with pytest.raises(ValueError, match="must not exceed mqtt_receive_maximum"):
        Settings(infra=infra_settings, ingest_batch_size=2000, mqtt_receive_maximum=1000)
    with pytest.raises(ValueError, match="mqtt_share_group"):
        Settings(infra=infra_settings, mqtt_share_group="a/b")


async def test_the_default_subscription_is_plain_and_a_share_group_is_an_explicit_choice(
    make_app: AppFactory,
) -> None:
    # make_app sets a share group; None and "" stand for leaving TELEMETRY_INGEST_MQTT_SHARE_GROUP unset or empty.
    async with running(make_app(unique_client_id(CLIENT_PREFIX), mqtt_share_group=None)) as plain:
        assert plain.subscriptions == (TOPIC_FILTER,)
        assert plain.shared is False
    async with running(make_app(unique_client_id(CLIENT_PREFIX), mqtt_share_group="")) as empty:
        assert empty.subscriptions == (TOPIC_FILTER,)
    assert Settings.model_fields["mqtt_share_group"].default is None


async def test_readings_queued_across_a_broker_restart_are_all_stored_once(
    own_mosquitto: EmbeddedMqttBroker,
    infra_settings: InfraSettings,
    make_tenant: TenantFactory,
    db_engine: AsyncEngine,
) -> None:
    # The service offline, its broker restarted with readings queued for it, more readings after the
    # restart: with the default (plain) subscription every one of them must reach the database once.
    slug = await make_tenant(committed=True)
    url = await asyncio.to_thread(own_mosquitto.start, 30.0)
    infra = infra_settings.model_copy(
        update={"mqtt": infra_settings.mqtt.model_copy(update={"url": url, "session_expiry_seconds": 600})}
    )
    settings = Settings(
        infra=infra,
        mqtt_client_id=unique_client_id(CLIENT_PREFIX),
        ingest_batch_size=200,
        ingest_batch_interval_seconds=0.05,
        upgrade_tenants_on_start=False,
        retention_enabled=False,
    )
    per_phase = 150
    readings = [reading(index, minutes_ago=index / 10) for index in range(2 * per_phase)]

    async with running(create_app(settings)) as first:
        assert first.subscriptions == (TOPIC_FILTER,)
    async with Publisher(url) as publisher:
        await publisher.publish_many((topic(slug), orjson.dumps(item)) for item in readings[:per_phase])
    await asyncio.to_thread(own_mosquitto.stop)
    assert await asyncio.to_thread(own_mosquitto.start, 30.0) == url
    async with Publisher(url) as publisher:
        await publisher.publish_many((topic(slug), orjson.dumps(item)) for item in readings[per_phase:])

    async with running(create_app(settings)) as resumed:
        assert resumed.session_present is True
        await wait_for_scalar(db_engine, readings_count(slug), len(readings))
        await wait_until(lambda: resumed.acked == len(readings), within=15)
    async with db_engine.connect() as connection:
        stored = await connection.scalars(text(f'SELECT value FROM "{schema_for(slug)}".readings'))
        assert sorted(stored) == [float(index) for index in range(len(readings))]
