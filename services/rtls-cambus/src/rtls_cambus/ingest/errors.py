"""Errors of the camera events and commands API."""

from __future__ import annotations

from mirante.web.errors import ApiError, ConflictError, ValidationFailedError


class CameraNotOnBusError(ConflictError):
    def __init__(self, camera_id: int) -> None:
        super().__init__(
            f"camera {camera_id} has not spoken on CAM-BUS yet, so its command topic is unknown",
            code="camera_not_on_bus",
        )


class CommandNotDeliveredError(ApiError):
    """The broker refused the command, or could not be reached."""

    status_code, code = 502, "command_not_delivered"


class CommandTimeoutError(ApiError):
    """The broker did not acknowledge the command in time: it may or may not reach the camera."""

    status_code, code = 504, "command_timeout"


class InvalidRangeError(ValidationFailedError):
    def __init__(self) -> None:
        message = "until must be after since"
        super().__init__(message, code="invalid_range", details=[{"field": "query.until", "message": message}])
