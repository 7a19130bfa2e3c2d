"""Identifier rules every part of the service applies: device ids, sensor types, units, the sensor topic."""

from __future__ import annotations

from typing import Final

TOPIC_TEMPLATE: Final = "tenants/{tenant}/devices/{device_id}/sensors/{sensor_type}"
IDENTIFIER_PATTERN: Final = r"[A-Za-z0-9_.:-]{1,128}"
"""Device ids and sensor types: 1 to 128 of letters, digits and `_ . : -`."""
MAX_UNIT_LENGTH: Final = 32
