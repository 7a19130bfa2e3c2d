"""Device authentication on the embedded broker (`MIRANTE_EMBEDDED_MQTT_AUTH`), end to end.

A real amqtt broker, started by the library as `mirante up` starts it, asks this service's go-auth endpoints
(served by uvicorn on 127.0.0.1) who may connect and publish; real MQTT clients try without credentials, with a
wrong secret, and with the credentials the service issued a device.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.db import create_sessionmaker
from mirante.devstack.errors import InvalidStackConfigError
from mirante.devstack.mqtt_broker import BrokerAuth, EmbeddedMqttBroker, configured_auth
from mirante.mqtt import parse_mqtt_url
from mirante.settings import InfraSettings
from mirante.testing.browser import LiveServer
from telemetry_ingest.config import Settings
from telemetry_ingest.devices import service as devices
from telemetry_ingest.devices.schemas import DeviceCreate
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy.scope import enter_tenant

pytest.importorskip("amqtt", reason="the embedded amqtt broker comes with mirante[embedded]")

TenantFactory = Callable[..., Awaitable[str]]
BROKER_SECRET = "embedded-broker-secret-for-tests"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def mqtt_client(
    port: int, username: str | None = None, password: str | None = None
) -> AsyncIterator[aiomqtt.Client]:
    client = aiomqtt.Client(
        "127.0.0.1",
        port,
        username=username,
        password=password,
        identifier=f"auth-test-{uuid.uuid4().hex[:10]}",
        protocol=aiomqtt.ProtocolVersion.V311,
        timeout=10,
    )
    async with client:
        yield client


async def refused(port: int, username: str | None = None, password: str | None = None) -> bool:
    try:
        async with mqtt_client(port, username, password):
            return False
    except aiomqtt.MqttError:
        return True


def test_auth_is_off_unless_asked_for_and_needs_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIRANTE_EMBEDDED_MQTT_AUTH", raising=False)
    assert configured_auth() is None
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT_AUTH", "http://127.0.0.1:8002/api/v1/mqtt/go-auth")
    monkeypatch.delenv("MIRANTE_EMBEDDED_MQTT_AUTH_SECRET", raising=False)
    with pytest.raises(InvalidStackConfigError, match="MIRANTE_EMBEDDED_MQTT_AUTH_SECRET"):
        configured_auth()
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT_AUTH_SECRET", "s3cret")
    auth = configured_auth()
    assert auth is not None and auth.url.endswith("/go-auth") and auth.username == "mirante-suite"
    assert "s3cret" not in repr(auth) and auth.password not in repr(auth)
    with pytest.raises(InvalidStackConfigError, match="http"):
        configured_auth(url="127.0.0.1:8002")


async def test_the_embedded_broker_admits_devices_only_with_their_issued_credentials(
    make_tenant: TenantFactory, db_engine: AsyncEngine, infra_settings: InfraSettings, tmp_path: Path
) -> None:
    tenant = await make_tenant(committed=True)
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await enter_tenant(session, tenant)
        for device_id in ("d-001", "d-002"):
            await devices.register_device(session, tenant, DeviceCreate(device_id=device_id))
        issued = await devices.issue_credentials(session, tenant, "d-001")
    settings = Settings(
        infra=infra_settings,
        broker_auth_secret=BROKER_SECRET,
        mqtt_ingest_enabled=False,
        retention_enabled=False,
        upgrade_tenants_on_start=False,
    )
    async with LiveServer(create_app(settings)) as server:
        auth = BrokerAuth(url=f"{server.url}/api/v1/mqtt/go-auth", secret=BROKER_SECRET)
        broker = EmbeddedMqttBroker(tmp_path, port=free_port(), auth=auth)
        url = await asyncio.to_thread(broker.start, 30.0)
        try:
            assert broker.kind == "amqtt"
            suite = parse_mqtt_url(url)
            assert (suite.username, suite.password) == (auth.username, auth.password)
            port = suite.port

            # Anonymous clients, unknown devices and wrong secrets are turned away.
            assert await refused(port)
            assert await refused(port, issued.username, "not-the-secret")
            assert await refused(port, f"{tenant}:d-002", issued.secret)
            assert await refused(port, auth.username, "not-the-suite-password")

            # The device gets in with its credentials, and what it publishes to its own topics reaches the suite;
            # a publish to another device's topic is dropped.
            own = f"tenants/{tenant}/devices/d-001/sensors/temperature"
            other = f"tenants/{tenant}/devices/d-002/sensors/temperature"
            async with mqtt_client(port, suite.username, suite.password) as listener:
                await listener.subscribe(f"tenants/{tenant}/#", qos=1)
                async with mqtt_client(port, issued.username, issued.secret) as device:
                    await device.publish(other, b'{"value": 1}', qos=1)
                    await device.publish(own, b'{"value": 21.5}', qos=1)
                async with asyncio.timeout(10):
                    message = await anext(aiter(listener.messages))
                assert (str(message.topic), message.payload) == (own, b'{"value": 21.5}')
        finally:
            await asyncio.to_thread(broker.stop)
