"""Building aiomqtt clients for persistent or throw-away sessions, and removing a stored session."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mirante.mqtt.errors import MqttConfigError
from mirante.mqtt.url import MqttEndpoint, parse_mqtt_url

MqttProtocol = Literal["5", "3.1.1"]
"""MQTT 5 is the default; 3.1.1 exists for brokers that speak nothing else (the embedded amqtt)."""

MAX_SESSION_EXPIRY = 0xFFFFFFFF
MAX_RECEIVE_MAXIMUM = 65535


def resolve_endpoint(url: str | MqttEndpoint) -> MqttEndpoint:
    """Accept either a URL or an already parsed endpoint."""
    return url if isinstance(url, MqttEndpoint) else parse_mqtt_url(url)


def check_protocol(protocol: str) -> MqttProtocol:
    """Return the protocol if supported, else raise `MqttConfigError`."""
    if protocol == "5":
        return "5"
    if protocol == "3.1.1":
        return "3.1.1"
    raise MqttConfigError(f"unsupported MQTT protocol {protocol!r}; use '5' or '3.1.1'")


def build_client(
    endpoint: MqttEndpoint,
    *,
    client_id: str,
    protocol: MqttProtocol = "5",
    persistent: bool,
    session_expiry: int = 0,
    receive_maximum: int | None = None,
    keepalive: int = 30,
    timeout: float = 10.0,
    max_inflight_messages: int | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> aiomqtt.Client:
    """An unconnected aiomqtt client.

    `persistent=True` asks the broker to keep the session (subscriptions and unacknowledged or queued QoS 1
    messages) after a disconnect: MQTT 5 with clean start off and `session_expiry` seconds, or MQTT 3.1.1
    with clean session off. Otherwise the session is new and ends with the connection.
    """
    if endpoint.tls and tls_context is None:
        tls_context = ssl.create_default_context()
    common: dict[str, Any] = {
        "username": endpoint.username,
        "password": endpoint.password,
        "identifier": client_id,
        "keepalive": keepalive,
        "timeout": timeout,
        "max_inflight_messages": max_inflight_messages,
        "tls_context": tls_context,
    }
    if protocol == "5":
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            properties.SessionExpiryInterval = session_expiry
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        return aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            protocol=aiomqtt.ProtocolVersion.V5,
            # aiomqtt's default (clean start on the first connect only) would drop the stored
            # session every time the process starts.
            clean_start=not persistent,
            properties=properties,
            **common,
        )
    return aiomqtt.Client(
        endpoint.host, endpoint.port, protocol=aiomqtt.ProtocolVersion.V311, clean_session=not persistent, **common
    )


def on_connack(client: aiomqtt.Client, record_session_present: Callable[[bool], None]) -> None:
    """Call `record_session_present` with the CONNACK's session-present flag on every accepted connect.

    aiomqtt does not expose the CONNACK flags, so they are read on the way to its own callback.
    """
    aiomqtt_on_connect = client._on_connect

    def on_connect(
        paho_client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not reason_code.is_failure:
            record_session_present(flags.session_present)
        aiomqtt_on_connect(paho_client, userdata, flags, reason_code, properties)

    client._client.on_connect = on_connect


async def discard_session(
    url: str | MqttEndpoint,
    client_id: str,
    *,
    protocol: MqttProtocol = "5",
    tls_context: ssl.SSLContext | None = None,
) -> None:
    """Remove the broker's stored session of `client_id` (its subscriptions and queued messages).

    Connects once with a clean start and no session expiry, then disconnects.
    """
    client = build_client(
        resolve_endpoint(url),
        client_id=client_id,
        protocol=check_protocol(protocol),
        persistent=False,
        tls_context=tls_context,
    )
    async with client:
        pass
