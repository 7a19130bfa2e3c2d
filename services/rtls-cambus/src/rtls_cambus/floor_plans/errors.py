"""Errors of floor plans, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)


class FloorPlanNotFoundError(NotFoundError):
    def __init__(self, plan_id: int) -> None:
        super().__init__(f"there is no floor plan {plan_id}", code="floor_plan_not_found")


class FloorHasPlanError(ConflictError):
    def __init__(self, floor_id: int) -> None:
        super().__init__(
            f"floor {floor_id} has a plan already: delete it first",
            code="floor_has_plan",
            details={"floor_id": floor_id},
        )


class ImageTooLargeError(PayloadTooLargeError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the image is larger than {limit} bytes", code="image_too_large", details={"limit": limit})


class ImageTypeError(UnsupportedMediaTypeError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="image_type_refused")


class ImageDimensionsError(ValidationFailedError):
    def __init__(self, width: int, height: int, max_side: int, max_pixels: int) -> None:
        super().__init__(
            f"a {width}x{height} image is refused: each side must be 1 to {max_side} pixels and the area at most "
            f"{max_pixels} pixels",
            code="image_dimensions_refused",
            details={"width": width, "height": height, "max_side": max_side, "max_pixels": max_pixels},
        )
