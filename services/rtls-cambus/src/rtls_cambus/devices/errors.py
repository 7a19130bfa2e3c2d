"""Errors of devices and camera groups, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError, ValidationFailedError


class DeviceNotFoundError(NotFoundError):
    def __init__(self, kind: str, device_id: int) -> None:
        super().__init__(f"there is no {kind} {device_id}", code=f"{kind}_not_found")


class GatewayExistsError(ConflictError):
    def __init__(self, mac: str) -> None:
        super().__init__(f"a gateway with MAC {mac} exists already", code="gateway_exists", details={"mac": mac})


class CameraExistsError(ConflictError):
    def __init__(self, code: str) -> None:
        super().__init__(
            f"the building has a camera with code {code!r} already", code="camera_exists", details={"code": code}
        )


class PlacementError(ValidationFailedError):
    """A device placed somewhere that does not fit: a zone of another floor, a point off the plan."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, code="invalid_placement", details=[{"field": f"body.{field}", "message": message}])


class CameraGroupNotFoundError(NotFoundError):
    def __init__(self, group_id: int) -> None:
        super().__init__(f"there is no camera group {group_id}", code="camera_group_not_found")


class CameraGroupExistsError(ConflictError):
    def __init__(self) -> None:
        super().__init__("another camera group has this name", code="camera_group_exists")


class CameraMemberNotFoundError(NotFoundError):
    def __init__(self, group_id: int, device_id: int) -> None:
        super().__init__(f"camera {device_id} is not in group {group_id}", code="member_not_found")
