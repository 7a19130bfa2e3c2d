"""The subscriber's own decoding of plain QoS 1 PUBLISH packets: the same message paho makes, every other packet left
to paho; through the real broker, messages with and without properties all arrive and are acknowledged."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Sequence

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mirante.devstack import StackUrls
from mirante.mqtt import Message, SubscriberRunner, discard_session
from mirante.mqtt.connection import build_client, resolve_endpoint
from mirante.mqtt.publish_decoding import decode_plain_qos1_publish

TOPIC = b"rtls/gateways/AA:BB:CC:DD:EE:01/beacon"
PAYLOAD = b'{"readings": [{"tag_mac": "AA:BB:CC:DD:EE:FF", "rssi": -60}]}'


def publish_packet(topic: bytes, mid: int | None, properties: bytes, payload: bytes) -> bytearray:
    """What follows the fixed header of a PUBLISH: topic, packet id (QoS > 0), properties, payload."""
    packet_id = struct.pack("!H", mid) if mid is not None else b""
    return bytearray(struct.pack("!H", len(topic)) + topic + packet_id + properties + payload)


@pytest.mark.parametrize("header", [0x32, 0x3A, 0x33, 0x3B])
@pytest.mark.parametrize("payload", [PAYLOAD, b""])
def test_a_plain_qos1_packet_decodes_as_paho_decodes_it(header: int, payload: bytes) -> None:
    packet = publish_packet(TOPIC, 4242, b"\x00", payload)

    ours = decode_plain_qos1_publish(header, packet)
    paho = _packet.decode_publish(header, packet, MQTTProtocolVersion.MQTTv5)

    assert ours is not None
    assert (ours.topic, ours.mid, ours.qos, ours.dup, ours.retain, ours.payload) == (
        paho.topic.decode(),
        paho.mid,
        paho.qos,
        paho.dup,
        paho.retain,
        paho.payload,
    )
    assert isinstance(ours.payload, bytes)


@pytest.mark.parametrize(
    ("header", "packet"),
    [
        pytest.param(0x30, publish_packet(TOPIC, None, b"\x00", PAYLOAD), id="qos 0"),
        pytest.param(0x34, publish_packet(TOPIC, 7, b"\x00", PAYLOAD), id="qos 2"),
        pytest.param(0x32, publish_packet(TOPIC, 7, b"\x02\x01\x01", PAYLOAD), id="with properties"),
        pytest.param(0x32, publish_packet(b"", 7, b"\x03\x23\x00\x01", PAYLOAD), id="topic alias"),
        pytest.param(0x32, publish_packet(b"", 7, b"\x00", PAYLOAD), id="empty topic"),
        pytest.param(0x32, publish_packet(TOPIC, 7, b"", b"")[:-1], id="truncated"),
        pytest.param(0x32, bytearray(b"\x00\x01"), id="short"),
    ],
)
def test_every_other_packet_is_left_to_paho(header: int, packet: bytearray) -> None:
    assert decode_plain_qos1_publish(header, packet) is None


async def test_messages_with_and_without_properties_arrive_and_are_acknowledged(mirante_urls: StackUrls) -> None:
    url = mirante_urls.mqtt_url
    topic, client_id = f"mirante-test/decoding-{uuid.uuid4().hex[:12]}", f"decoding-{uuid.uuid4().hex[:12]}"
    received: list[Message] = []

    async def handler(messages: Sequence[Message]) -> None:
        received.extend(messages)

    runner = SubscriberRunner(
        url, client_id=client_id, topics=[f"{topic}/#"], handler=handler, batch_interval=0.05, session_expiry=60
    )
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.connected.wait(), 30)
        expiring = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        expiring.MessageExpiryInterval = 600
        expiring.UserProperty = ("gateway", "lab")
        publisher = build_client(resolve_endpoint(url), client_id=f"pub-{client_id}", persistent=False)
        async with publisher:
            await publisher.publish(f"{topic}/plain", b"plain", qos=1)
            await publisher.publish(f"{topic}/with-properties", b"with properties", qos=1, properties=expiring)
            await publisher.publish(f"{topic}/qos0", b"qos 0", qos=0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while runner.acked < 3:
            assert loop.time() < deadline, f"received {received}"
            await asyncio.sleep(0.02)
    finally:
        await runner.stop()
        await asyncio.gather(task, return_exceptions=True)
        await discard_session(url, client_id)
    assert sorted((message.topic, message.payload, message.qos) for message in received) == [
        (f"{topic}/plain", b"plain", 1),
        (f"{topic}/qos0", b"qos 0", 0),
        (f"{topic}/with-properties", b"with properties", 1),
    ]
    assert (runner.received, runner.acked) == (3, 3)
