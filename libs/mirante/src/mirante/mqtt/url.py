"""Parsing of broker URLs: `mqtt://[user:password@]host[:port]`, and `mqtts://` for TLS."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from mirante.mqtt.errors import InvalidMqttUrlError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where and how to reach a broker; the password is kept out of `repr`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """Parse `mqtt://[user:password@]host[:port]` (or `mqtts://…`) into an endpoint.

    The port defaults to 1883 (8883 for `mqtts`); user and password are percent-decoded.
    Raises `InvalidMqttUrlError` for any other shape.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidMqttUrlError("the MQTT URL is empty")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidMqttUrlError(f"the MQTT URL must start with mqtt:// or mqtts://, got {_redact(url)!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidMqttUrlError(f"the MQTT URL must not have a path, query or fragment: {_redact(url)!r}")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidMqttUrlError(f"the MQTT URL has an invalid port: {_redact(url)!r}") from exc
    if not host:
        raise InvalidMqttUrlError(f"the MQTT URL has no host: {_redact(url)!r}")
    if port == 0:
        raise InvalidMqttUrlError(f"the MQTT URL has port 0: {_redact(url)!r}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise InvalidMqttUrlError("the MQTT URL has a password but no user name")
    return MqttEndpoint(
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        username=username,
        password=password,
        tls=scheme == "mqtts",
    )


def _redact(url: str) -> str:
    """The URL without its credentials, safe for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
