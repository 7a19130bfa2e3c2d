"""Publishing at QoS 1 for tests and simulators: every call returns once the broker has acknowledged."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Iterable
from itertools import islice
from types import TracebackType
from typing import Self

from mirante.mqtt.connection import MqttProtocol, build_client, check_protocol, resolve_endpoint
from mirante.mqtt.errors import MqttConfigError
from mirante.mqtt.url import MqttEndpoint

Payload = bytes | str


class Publisher:
    """A connection for publishing; use `async with Publisher(url) as publisher:`."""

    def __init__(
        self,
        url: str | MqttEndpoint,
        *,
        client_id: str | None = None,
        protocol: MqttProtocol = "5",
        max_in_flight: int = 200,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise MqttConfigError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._client = build_client(
            resolve_endpoint(url),
            client_id=client_id or f"mirante-pub-{uuid.uuid4().hex}",
            protocol=check_protocol(protocol),
            persistent=False,
            timeout=timeout,
            max_inflight_messages=max_in_flight,
            tls_context=tls_context,
        )
        # aiomqtt warns above this many unacknowledged publishes; a window of them is the point here.
        self._client.pending_calls_threshold = max_in_flight + 1

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def publish(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False) -> None:
        """Publish one message and wait for the broker's acknowledgement (QoS 1 by default)."""
        await self._client.publish(topic, payload, qos=qos, retain=retain)

    async def publish_many(self, messages: Iterable[tuple[str, Payload]], *, qos: int = 1) -> int:
        """Publish `(topic, payload)` pairs, `max_in_flight` at a time; return how many were acknowledged."""
        pending = iter(messages)
        count = 0
        while window := list(islice(pending, self.max_in_flight)):
            await asyncio.gather(*(self.publish(topic, payload, qos=qos) for topic, payload in window))
            count += len(window)
        return count


async def publish(
    url: str | MqttEndpoint,
    topic: str,
    payloads: Iterable[Payload],
    *,
    qos: int = 1,
    protocol: MqttProtocol = "5",
) -> int:
    """Publish every payload to `topic` over a new connection; return once all are acknowledged."""
    async with Publisher(url, protocol=protocol) as publisher:
        return await publisher.publish_many(((topic, payload) for payload in payloads), qos=qos)
