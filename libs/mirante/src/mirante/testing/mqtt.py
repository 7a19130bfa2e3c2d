"""Testing a service's MQTT ingest against the real broker: apps whose subscriber has a client id of the test's own
(its persistent session removed afterwards), running an app until its subscriber is connected, waiting for what
the ingest stored, and a Mosquitto of a test's own that the test may restart.

The fixtures are registered by the `mirante` pytest plugin:

- `mqtt_sessions`: `client_id = mqtt_sessions.new("telemetry-ingest-test")`, a client id no other test uses, whose
  broker session is discarded when the test ends (also `mqtt_sessions.track(client_id)` for one made elsewhere);
  `mqtt_sessions.infra` is this run's infrastructure settings with a session expiry that outlives a restart;
- `mqtt5_broker`: skips the test on the embedded amqtt broker (MQTT 3.1.1 only, and it drops messages queued for
  offline sessions); use it with `pytestmark = pytest.mark.usefixtures("mqtt5_broker")`;
- `own_mosquitto`: a Mosquitto of the test alone (persistence on, a fixed free port), not started: `url =
  await asyncio.to_thread(own_mosquitto.start, 30.0)`; skipped where no mosquitto binary is installed.

A service's test module keeps only what is its own: how it builds its app (`make_app`) from these.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.devstack import StackUrls
from mirante.devstack.mqtt_broker import EmbeddedMqttBroker, find_mosquitto
from mirante.mqtt import SubscriberRunner, discard_session
from mirante.settings import InfraSettings
from mirante.testing.network import free_port
from mirante.testing.streams import WaitTimeoutError, wait_until

SESSION_EXPIRY_SECONDS = 600
"""Long enough for a test's restart of the app or the broker; the sessions are discarded after the test anyway."""
RUNNER_ATTRIBUTE = "mqtt_ingest_runner"
"""Where a service's ingest worker keeps its `SubscriberRunner` on `app.state` while it runs."""
POLL_SECONDS = 0.1


def unique_client_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class MqttSessions:
    """Client ids of one test, whose persistent sessions on this run's broker are discarded after it."""

    def __init__(self, infra: InfraSettings, url: str) -> None:
        self.infra = infra
        self.url = url
        self.client_ids: set[str] = set()

    def new(self, prefix: str) -> str:
        return self.track(unique_client_id(prefix))

    def track(self, client_id: str) -> str:
        self.client_ids.add(client_id)
        return client_id

    async def discard(self) -> None:
        for client_id in sorted(self.client_ids):
            await discard_session(self.url, client_id, protocol=self.infra.mqtt.protocol)


@pytest_asyncio.fixture(loop_scope="session")
async def mqtt_sessions(infra_settings: InfraSettings, mirante_urls: StackUrls) -> AsyncIterator[MqttSessions]:
    infra = infra_settings.model_copy(
        update={"mqtt": infra_settings.mqtt.model_copy(update={"session_expiry_seconds": SESSION_EXPIRY_SECONDS})}
    )
    sessions = MqttSessions(infra, mirante_urls.mqtt_url)
    try:
        yield sessions
    finally:
        await sessions.discard()


@pytest.fixture
def mqtt5_broker() -> None:
    if os.environ.get("MIRANTE_MQTT_PROTOCOL") == "3.1.1":
        pytest.skip("the embedded amqtt broker speaks MQTT 3.1.1 only and drops messages queued for offline sessions")


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[EmbeddedMqttBroker]:
    """A Mosquitto of this test alone, persistence on, on a fixed free port, that the test may restart."""
    if find_mosquitto() is None:
        pytest.skip("no mosquitto binary installed: this test restarts a real Mosquitto")
    broker = EmbeddedMqttBroker(tmp_path / "broker", kind="mosquitto", port=free_port())
    try:
        yield broker
    finally:
        broker.stop()


@asynccontextmanager
async def running(app: FastAPI, *, within: float = 10.0) -> AsyncIterator[SubscriberRunner]:
    """The app started (its lifespan), until its MQTT subscriber is connected; stopped when the block ends."""
    async with app.router.lifespan_context(app):
        runner: SubscriberRunner | None = None

        def connected() -> bool:
            nonlocal runner
            runner = getattr(app.state, RUNNER_ATTRIBUTE, None)
            return runner is not None and runner.connected.is_set()

        await wait_until(connected, within=within, what="the app's MQTT subscriber to connect")
        assert runner is not None
        yield runner


async def wait_for_scalar(
    engine: AsyncEngine, query: str, expected: Any, *, within: float = 20.0, **params: Any
) -> Any:
    """Poll `query` (one value) until it equals `expected`; returns it. A count that passes `expected` fails at
    once (something was stored twice), one that stays short fails after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with engine.connect() as connection:
            value = await connection.scalar(text(query), params)
        if value == expected:
            return value
        counting = isinstance(value, int) and isinstance(expected, int)
        if (counting and value > expected) or loop.time() > deadline:
            raise WaitTimeoutError(f"{value!r} instead of {expected!r} after up to {within:.0f} s: {query}")
        await asyncio.sleep(POLL_SECONDS)
