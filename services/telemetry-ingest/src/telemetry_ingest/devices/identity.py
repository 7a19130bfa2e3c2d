"""How a device is named on the broker: its MQTT username and the topics it may publish to. Pure functions.

A device logs in as `<tenant>:<device_id>`. Tenant slugs never contain `:`, so the first `:` separates the two
even when the device id has one of its own. It may publish only to `tenants/<tenant>/devices/<device_id>/sensors/
<sensor_type>`, with a concrete sensor type: the same rule the ingest applies to every topic it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mirante.auth.schemas import TENANT_SLUG_PATTERN
from telemetry_ingest.identifiers import IDENTIFIER_PATTERN

USERNAME_SEPARATOR: Final = ":"
MAX_USERNAME_LENGTH: Final = 48 + 1 + 128
"""The longest device username: a 48-character slug, `:`, a 128-character device id."""

_TENANT = re.compile(TENANT_SLUG_PATTERN)
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    """The tenant and device a device username names."""

    tenant: str
    device_id: str

    @property
    def username(self) -> str:
        return device_username(self.tenant, self.device_id)


def is_device_id(value: str) -> bool:
    """Whether `value` can be a device id (or a sensor type): 1 to 128 of `A-Z a-z 0-9 _ . : -`."""
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None


def device_username(tenant: str, device_id: str) -> str:
    """The MQTT username of a device: `<tenant>:<device_id>`."""
    return f"{tenant}{USERNAME_SEPARATOR}{device_id}"


def parse_device_username(username: str) -> DeviceLogin | None:
    """The tenant and device of `<tenant>:<device_id>`, or None when `username` does not have that shape."""
    if not isinstance(username, str) or len(username) > MAX_USERNAME_LENGTH:
        return None
    tenant, separator, device_id = username.partition(USERNAME_SEPARATOR)
    if not separator or _TENANT.fullmatch(tenant) is None or _IDENTIFIER.fullmatch(device_id) is None:
        return None
    return DeviceLogin(tenant=tenant, device_id=device_id)


def sensor_topic_filter(tenant: str, device_id: str) -> str:
    """The topic filter covering every sensor topic of one device (for broker ACL rules)."""
    return f"tenants/{tenant}/devices/{device_id}/sensors/+"


def is_own_sensor_topic(topic: str, login: DeviceLogin) -> bool:
    """Whether `topic` is a concrete sensor topic of the device `login` (no wildcard, no other tenant or device)."""
    prefix = sensor_topic_filter(login.tenant, login.device_id).removesuffix("+")
    return (
        topic.startswith(prefix)
        and _TENANT.fullmatch(login.tenant) is not None
        and _IDENTIFIER.fullmatch(login.device_id) is not None
        and _IDENTIFIER.fullmatch(topic.removeprefix(prefix)) is not None
    )
