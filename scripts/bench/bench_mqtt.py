"""The MQTT subscriber runner against a bare aiomqtt subscriber, draining the same backlog.

Both subscribe at QoS 1 on a persistent MQTT 5 session; N messages are queued at the broker while the
subscriber is away, then it reconnects and the time to receive them all is measured. The bare subscriber lets
paho acknowledge on receipt; the runner acknowledges each batch after its handler returns (here a handler that
only counts), which is what makes a restart lossless.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from report import Report, rate

from mirante.devstack import EmbeddedStack, ResolvedUrls, StackUrls
from mirante.mqtt import Message, Publisher, SubscriberRunner, parse_mqtt_url

MESSAGES = 50_000
SESSION_EXPIRY = 600


def _payloads(topic: str) -> list[tuple[str, bytes]]:
    return [
        (topic, orjson.dumps({"value": 20 + i % 10, "unit": "celsius", "timestamp": "2026-11-22T10:00:00Z", "seq": i}))
        for i in range(MESSAGES)
    ]


def _bare_client(url: str, client_id: str) -> aiomqtt.Client:
    endpoint = parse_mqtt_url(url)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY
    properties.ReceiveMaximum = 1000
    return aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=properties,
    )


async def _bare(url: str, topic: str) -> float:
    client_id = f"bench-bare-{uuid.uuid4().hex[:8]}"
    async with _bare_client(url, client_id) as client:
        await client.subscribe(topic, options=SubscribeOptions(qos=1))
    async with Publisher(url) as publisher:
        await publisher.publish_many(_payloads(topic))
    received = 0
    started = time.perf_counter()
    async with _bare_client(url, client_id) as client:
        async for _ in client.messages:
            received += 1
            if received == MESSAGES:
                break
    return time.perf_counter() - started


async def _runner(url: str, topic: str) -> float:
    client_id = f"bench-runner-{uuid.uuid4().hex[:8]}"
    received = 0
    done = asyncio.Event()

    async def handler(batch: Sequence[Message]) -> None:
        nonlocal received
        received += len(batch)
        if received >= MESSAGES:
            done.set()

    def runner() -> SubscriberRunner:
        return SubscriberRunner(url, client_id=client_id, topics=[topic], handler=handler, batch_size=500)

    first = runner()
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.connected.wait(), 10)
    await first.stop()
    await task
    async with Publisher(url) as publisher:
        await publisher.publish_many(_payloads(topic))
    second = runner()
    started = time.perf_counter()
    task = asyncio.create_task(second.run())
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    await second.stop()
    await task
    return elapsed


async def run(urls: StackUrls) -> Report:
    if shutil.which("mosquitto", path="/usr/local/sbin:/usr/sbin:/sbin:" + os.environ.get("PATH", "")) is None:
        raise RuntimeError("the MQTT benchmark needs a mosquitto binary (its queue limits are set for a backlog)")
    # A broker of its own, configured for backlogs: a default Mosquitto drops queued messages past 1,000.
    with tempfile.TemporaryDirectory(prefix="mirante-bench-mqtt-") as folder:
        given = ResolvedUrls(database_url=urls.database_url, redis_url=urls.redis_url, mqtt_url=None)
        async with EmbeddedStack(Path(folder), urls=given, mqtt_broker="mosquitto") as stack_urls:
            topic = f"bench/{uuid.uuid4().hex[:8]}/tenants/t1/devices/d1/sensors/temperature"
            bare = await _bare(stack_urls.mqtt_url, topic)
            runner = await _runner(stack_urls.mqtt_url, topic + "-runner")
    return Report(
        name="mqtt",
        title="MQTT subscriber runner",
        rows=[
            ("baseline: bare aiomqtt, QoS 1, acknowledged on receipt", rate(MESSAGES, bare)),
            ("runner: QoS 1, batches of 500 acknowledged after the handler", rate(MESSAGES, runner)),
        ],
        ratio=bare / runner,
        ratio_meaning="runner rate ÷ bare aiomqtt rate",
        target="≥ 0.8: acknowledging after the handler should cost little",
        notes=[
            f"{MESSAGES:,} messages of about 80 bytes queued for an offline persistent session, then drained; "
            "Mosquitto on 127.0.0.1 with the suite's backlog settings; subscriber and broker share the cores.",
        ],
    )
