"""Errors of devices, sensors and device credentials, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError


class DeviceNotFoundError(NotFoundError):
    def __init__(self, tenant: str, device_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no device {device_id!r}", code="device_not_found")


class SensorNotFoundError(NotFoundError):
    def __init__(self, device_id: str, sensor: str) -> None:
        super().__init__(f"device {device_id!r} has no sensor {sensor!r}", code="sensor_not_found")


class DeviceExistsError(ConflictError):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} exists already", code="device_exists", details={"device_id": device_id})


class CredentialsNotFoundError(NotFoundError):
    def __init__(self, device_id: str, message: str | None = None) -> None:
        super().__init__(
            message or f"device {device_id!r} has no MQTT credentials: create them with POST",
            code="credentials_not_found",
        )
