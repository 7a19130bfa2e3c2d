"""Errors of zones, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError, ValidationFailedError


class ZoneNotFoundError(NotFoundError):
    def __init__(self, zone_id: int) -> None:
        super().__init__(f"there is no zone {zone_id}", code="zone_not_found")


class ZoneExistsError(ConflictError):
    def __init__(self, floor_id: int, name: str) -> None:
        super().__init__(
            f"floor {floor_id} has a zone named {name!r} already", code="zone_exists", details={"floor_id": floor_id}
        )


class PolygonError(ValidationFailedError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_polygon", details=[{"field": "body.polygon", "message": message}])


class PlanRequiredError(ConflictError):
    """The floor exists but has no plan yet: what was given is in plan pixels."""

    def __init__(self, floor_id: int, what: str) -> None:
        super().__init__(
            f"floor {floor_id} has no plan: upload one before giving {what}",
            code="floor_plan_required",
            details={"floor_id": floor_id},
        )
