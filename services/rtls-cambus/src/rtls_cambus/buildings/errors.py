"""Errors of buildings and floors, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError


class BuildingNotFoundError(NotFoundError):
    def __init__(self, building_id: int) -> None:
        super().__init__(f"there is no building {building_id}", code="building_not_found")


class FloorNotFoundError(NotFoundError):
    def __init__(self, floor_id: int) -> None:
        super().__init__(f"there is no floor {floor_id}", code="floor_not_found")


class BuildingExistsError(ConflictError):
    def __init__(self, field: str) -> None:
        super().__init__(f"another building has this {field}", code="building_exists", details={"field": field})


class FloorExistsError(ConflictError):
    def __init__(self, building_id: int, level: int) -> None:
        super().__init__(
            f"building {building_id} has a floor at level {level} already",
            code="floor_exists",
            details={"building_id": building_id, "level": level},
        )


class BuildingInUseError(ConflictError):
    def __init__(self, building_id: int, what: str) -> None:
        super().__init__(
            f"building {building_id} still has {what}: delete or move them first",
            code="building_in_use",
            details={"building_id": building_id, "referenced_by": what},
        )


class FloorInUseError(ConflictError):
    def __init__(self, floor_id: int, what: str) -> None:
        super().__init__(
            f"floor {floor_id} still has {what}: delete or move them first",
            code="floor_in_use",
            details={"floor_id": floor_id, "referenced_by": what},
        )
