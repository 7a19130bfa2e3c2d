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
    """Placement values that do not go together (a zone or point without a floor, x without y), or a point off
    the floor's plan."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, code="invalid_placement", details=[{"field": f"body.{field}", "message": message}])


class ZoneOnAnotherFloorError(ConflictError):
    def __init__(self, zone_id: int, zone_floor_id: int, floor_id: int) -> None:
        super().__init__(
            f"zone {zone_id} is on floor {zone_floor_id}, not on floor {floor_id}",
            code="zone_on_another_floor",
            details={"field": "zone_id", "floor_id": zone_floor_id},
        )


class FloorInAnotherBuildingError(ConflictError):
    def __init__(self, floor_id: int, floor_building_id: int, building_id: int) -> None:
        super().__init__(
            f"floor {floor_id} is in building {floor_building_id}, not in building {building_id}",
            code="floor_in_another_building",
            details={"field": "floor_id", "building_id": floor_building_id},
        )


class CameraGroupNotFoundError(NotFoundError):
    def __init__(self, group_id: int) -> None:
        super().__init__(f"there is no camera group {group_id}", code="camera_group_not_found")


class CameraGroupExistsError(ConflictError):
    def __init__(self) -> None:
        super().__init__("another camera group has this name", code="camera_group_exists")


class CameraMemberNotFoundError(NotFoundError):
    def __init__(self, group_id: int, device_id: int) -> None:
        super().__init__(f"camera {device_id} is not in group {group_id}", code="member_not_found")
